/**
 * `regex_match` runs on RE2 (re2js): patterns that make a backtracking engine run for ever answer
 * correctly on long inputs; patterns RE2 cannot compile fail only their flag, saying why; each
 * pattern is compiled with the flag set, never per evaluation; and RE2's semantics where they
 * differ from JavaScript's RegExp (docs/engine.md lists each difference).
 */
import { spawn, type ChildProcess } from "node:child_process";
import { RE2JS } from "re2js";
import { afterEach, describe, expect, it, vi } from "vitest";
import { compileFlagSet, FlagSetError, regexProblem, validateFlagSet, type FlagSetDefinition } from "./index.ts";

const regexFlag = (pattern: string, flags?: string) => ({
  state: "ENABLED" as const,
  variants: { on: true, off: false },
  defaultVariant: "off",
  targeting: { if: [{ regex_match: [{ var: "s" }, pattern, ...(flags ? [flags] : [])] }, "on", "off"] },
});

const children: ChildProcess[] = [];
afterEach(() => {
  for (const c of children.splice(0)) c.kill("SIGKILL");
});

/**
 * Evaluates in a child process: a backtracking matcher would block the event loop for good, and
 * in-process that would hang the test worker instead of failing this test by its timeout.
 */
async function evaluateInChild(def: FlagSetDefinition, calls: { flag: string; s: string }[]): Promise<string[]> {
  const code = `
    import { compileFlagSet } from ${JSON.stringify(new URL("./index.ts", import.meta.url).href)};
    let input = "";
    for await (const chunk of process.stdin) input += chunk;
    const { def, calls } = JSON.parse(input);
    const set = compileFlagSet(def, { extensions: true });
    process.stdout.write(JSON.stringify(calls.map((c) => { const r = set.evaluate(c.flag, { s: c.s }); return r.variant ?? r.errorCode; })));`;
  const child = spawn(process.execPath, ["--import", "tsx", "--input-type=module", "-e", code], { stdio: ["pipe", "pipe", "inherit"] });
  children.push(child);
  let out = "";
  child.stdout.setEncoding("utf8").on("data", (d: string) => (out += d));
  const exit = new Promise<number | null>((resolve) => child.once("exit", resolve));
  child.stdin.end(JSON.stringify({ def, calls }));
  const code_ = await exit;
  if (code_ !== 0) throw new Error(`evaluation child exited with ${code_}`);
  return JSON.parse(out) as string[];
}

describe("regex_match on RE2", () => {
  // Each of these takes exponential (or high-polynomial) time in a backtracking engine on the
  // inputs below; JavaScript's RegExp never returns.
  const def: FlagSetDefinition = {
    flags: {
      "overlapping-star": regexFlag("(a|a)*$"),
      "overlapping-plus": regexFlag("(a|aa)+$"),
      "nested-plus": regexFlag("(a+)+$"),
      "repeated-dot-star": regexFlag("(.*a){20}"),
      "nested-case-insensitive": regexFlag("^(A+)+$", "i"),
      words: regexFlag("^(\\w+\\s?)*$"),
    },
  };
  const run = (n: number) => {
    const as = "a".repeat(n);
    return [
      // [flag, input, the right answer]
      ["overlapping-star", as, "on"],
      ["overlapping-star", `${as}!`, "on"], // the empty match at the end
      ["overlapping-plus", as, "on"],
      ["overlapping-plus", `${as}!`, "off"],
      ["nested-plus", as, "on"],
      ["nested-plus", `${as}!`, "off"],
      ["repeated-dot-star", as, "on"],
      ["repeated-dot-star", `${"a".repeat(19)}${"b".repeat(n)}`, "off"], // only 19 a's
      ["nested-case-insensitive", as, "on"],
      ["nested-case-insensitive", `${as}!`, "off"],
      ["words", "word ".repeat(n / 5), "on"],
      ["words", `${"word ".repeat(n / 5)}!`, "off"],
    ] as const;
  };

  for (const n of [5_000, 100_000]) {
    it(`answers patterns that backtrack catastrophically, on ${n.toLocaleString("en-US")}-character inputs`, async () => {
      const cases = run(n);
      const got = await evaluateInChild(
        def,
        cases.map(([flag, s]) => ({ flag, s })),
      );
      expect(got.map((v, i) => `${cases[i][0]}: ${v}`)).toEqual(cases.map(([flag, , want]) => `${flag}: ${want}`));
    });
  }

  it("fails only the flag whose pattern RE2 cannot compile, saying why", () => {
    const bad: FlagSetDefinition = {
      flags: {
        backreference: regexFlag("(a)\\1"),
        lookahead: regexFlag("^(?!admin)"),
        lookbehind: regexFlag("(?<=@)acme"),
        fine: regexFlag("@acme\\.com$"),
      },
    };
    const issues = validateFlagSet(bad, { extensions: true });
    expect(issues).toEqual([
      {
        path: "flags.backreference.targeting.if[0].regex_match[1]",
        message: expect.stringMatching(/^regex_match: backreferences \(\\1\) are not supported \(RE2 syntax/),
        atEvaluation: true,
      },
      {
        path: "flags.lookahead.targeting.if[0].regex_match[1]",
        message: expect.stringMatching(/^regex_match: lookahead \(\(\?!…\) is not supported \(RE2 syntax/),
        atEvaluation: true,
      },
      {
        path: "flags.lookbehind.targeting.if[0].regex_match[1]",
        message: expect.stringMatching(/^regex_match: lookbehind \(\(\?<=…\) is not supported \(RE2 syntax/),
        atEvaluation: true,
      },
    ]);
    // Writers (the flags service compiles strict) refuse; an evaluator loads the rest.
    expect(() => compileFlagSet(bad, { extensions: true, strict: true })).toThrow(FlagSetError);
    const set = compileFlagSet(bad, { extensions: true });
    for (const key of ["backreference", "lookahead", "lookbehind"]) {
      expect(set.evaluate(key, { s: "aa" })).toMatchObject({ reason: "ERROR", errorCode: "PARSE_ERROR", errorMessage: expect.stringMatching(/not supported/) });
    }
    expect(set.evaluate("fine", { s: "ann@acme.com" })).toMatchObject({ variant: "on", reason: "TARGETING_MATCH" });
  });

  it("explains other patterns RE2 refuses", () => {
    expect(regexProblem("\\u00e9")).toMatch(/^\\u escapes are not supported .*: write \\x\{00E9\}/);
    expect(regexProblem("\\k<x>")).toMatch(/^named backreferences/);
    expect(regexProblem("\\p{Script=Greek}")).toMatch(/unknown Unicode class `\\p\{Script=Greek\}`/);
    expect(regexProblem("a{1001}")).toMatch(/invalid repeat count `\{1001\}` \(at most 1000/);
    expect(regexProblem("(a{100}){11}")).toMatch(/invalid repeat count `\{11\}` \(at most 1000, nested repeats multiplied\)/);
    expect(regexProblem("[unclosed")).toMatch(/^not a valid regular expression \(RE2 syntax.*\): missing closing \]: `\[unclosed`/);
    expect(regexProblem("a++")).toMatch(/^not a valid regular expression .*: invalid nested repetition operator: `\+\+`/);
  });

  it("compiles each pattern once per flag set, never per evaluation", () => {
    const compile = vi.spyOn(RE2JS, "compile");
    try {
      const set = compileFlagSet({ flags: { a: regexFlag("^a"), b: regexFlag("b$", "i"), c: regexFlag("c") } }, { extensions: true });
      expect(compile).toHaveBeenCalledTimes(3);
      for (let i = 0; i < 1000; i++) for (const key of ["a", "b", "c"]) set.evaluate(key, { s: `abc-${i}` });
      expect(compile).toHaveBeenCalledTimes(3);
    } finally {
      compile.mockRestore();
    }
  });

  describe("RE2 semantics where they differ from JavaScript's RegExp", () => {
    const matches = (pattern: string, s: string, flags?: string) => {
      const set = compileFlagSet({ flags: { f: regexFlag(pattern, flags) } }, { extensions: true });
      return set.evaluate("f", { s }).variant === "on";
    };
    it("`.` excludes only \\n (JavaScript also excludes \\r, \\u2028, \\u2029); `s` lets it match \\n", () => {
      expect(matches("a.b", "a\nb")).toBe(false);
      expect(matches("a.b", "a\rb")).toBe(true);
      expect(matches("a.b", "a\u2028b")).toBe(true);
      expect(matches("a.b", "a\nb", "s")).toBe(true);
    });
    it("`m`: ^ and $ at \\n only (JavaScript: also \\r, \\u2028, \\u2029)", () => {
      expect(matches("^b", "a\nb", "m")).toBe(true);
      expect(matches("^b", "a\rb", "m")).toBe(false);
      expect(matches("a$", "a\n")).toBe(false); // without m, $ is the end of the text, as in JavaScript
    });
    it("\\s, \\w, \\d and \\b are ASCII (JavaScript's \\s also matches Unicode spaces such as U+00A0)", () => {
      expect(matches("a\\sb", "a\u00a0b")).toBe(false);
      expect(matches("a\\sb", "a\tb")).toBe(true);
      expect(matches("^\\w$", "é")).toBe(false);
      expect(matches("^\\p{L}$", "é")).toBe(true);
    });
    it("code points, not UTF-16 units; \\x{…} escapes; Unicode case folding with i", () => {
      expect(matches("^.$", "😀")).toBe(true);
      expect(matches("^\\x{1F600}$", "😀")).toBe(true);
      expect(matches("^k$", "\u212a", "i")).toBe(true); // KELVIN SIGN folds to k, as with /k/iu
    });
    it("RE2-only syntax: inline flags, \\A and \\z, POSIX classes, \\Q…\\E, (?P<name>…)", () => {
      expect(matches("(?i)^acme$", "ACME")).toBe(true);
      expect(matches("\\Aab\\z", "ab")).toBe(true);
      expect(matches("^[[:alpha:]]+$", "abc")).toBe(true);
      expect(matches("^\\Q1+1\\E$", "1+1")).toBe(true);
      expect(matches("^(?P<user>[a-z]+)@", "ann@x")).toBe(true);
      expect(matches("^(?<user>[a-z]+)@", "ann@x")).toBe(true);
    });
  });
});
