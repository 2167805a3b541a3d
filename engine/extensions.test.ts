import { describe, expect, it } from "vitest";
import { compileFlagSet, FlagSetError, parseFlagdJson, validateFlagSet, type FlagSetDefinition } from "./index.ts";

const regexFlag = (targeting: unknown): FlagSetDefinition => ({
  flags: {
    staff: {
      state: "ENABLED",
      variants: { on: true, off: false },
      defaultVariant: "off",
      targeting: targeting as never,
    },
  },
});

describe("Vane extensions", () => {
  it("are unknown operators in flagd mode, so flagd files evaluate exactly as flagd would", () => {
    const def = regexFlag({ if: [{ regex_match: [{ var: "email" }, "@acme\\.com$"] }, "on", null] });
    expect(validateFlagSet(def).map((i) => i.message)).toEqual(['unknown operator "regex_match"']);
    // Like flagd: the flag set loads, and that flag's evaluations fail.
    expect(compileFlagSet(def).evaluate("staff", { email: "a@acme.com" })).toMatchObject({ reason: "ERROR", errorCode: "PARSE_ERROR" });
    expect(() => parseFlagdJson(JSON.stringify(def))).toThrow(FlagSetError);
    expect(validateFlagSet(def, { extensions: true })).toEqual([]);
  });

  it("regex_match matches strings with the pattern's flags and returns null on non-strings", () => {
    const set = compileFlagSet(regexFlag({ if: [{ regex_match: [{ var: "email" }, "@ACME\\.com$", "i"] }, "on", "off"] }), { extensions: true });
    expect(set.evaluate("staff", { email: "ann@acme.com" }).variant).toBe("on");
    expect(set.evaluate("staff", { email: "ann@other.com" }).variant).toBe("off");
    // null is falsy for `if`: a number is not matched, it is not an error.
    expect(set.evaluate("staff", { email: 42 })).toMatchObject({ variant: "off", reason: "TARGETING_MATCH" });
    // Unicode-aware (the `u` flag): one code point, not two UTF-16 units.
    const emoji = compileFlagSet(regexFlag({ if: [{ regex_match: [{ var: "name" }, "^.$"] }, "on", "off"] }), { extensions: true });
    expect(emoji.evaluate("staff", { name: "😀" }).variant).toBe("on");
  });

  it("rejects bad regex_match arguments at compile time with their path", () => {
    const issues = (t: unknown) => validateFlagSet(regexFlag(t), { extensions: true }).map((i) => `${i.path}: ${i.message}`);
    expect(issues({ regex_match: [{ var: "x" }, "("] })[0]).toMatch(
      /^flags\.staff\.targeting\.regex_match\[1\]: regex_match: not a valid regular expression \(RE2 syntax/,
    );
    expect(issues({ regex_match: [{ var: "x" }, { var: "p" }] })[0]).toMatch(/pattern must be a string literal/);
    expect(issues({ regex_match: [{ var: "x" }, "a", "g"] })[0]).toMatch(/flags must be/);
    expect(issues({ regex_match: [{ var: "x" }, "a".repeat(257)] })[0]).toMatch(/longer than 256/);
    expect(issues({ regex_match: [{ var: "x" }] })[0]).toMatch(/takes/);
  });

  it("experiment marks the resolutions it assigns, and only those", () => {
    const def: FlagSetDefinition = {
      flags: {
        checkout: {
          state: "ENABLED",
          variants: { control: "a", treatment: "b" },
          defaultVariant: "control",
          targeting: {
            if: [
              { "==": [{ var: "plan" }, "staff"] },
              "treatment",
              { "!!": { var: "targetingKey" } },
              { experiment: ["exp-1", { fractional: [{ cat: ["exp-1", { var: "targetingKey" }] }, ["control", 50], ["treatment", 50]] }] },
              null,
            ],
          } as never,
        },
      },
    };
    const set = compileFlagSet(def, { extensions: true });
    const staff = set.evaluate("checkout", { targetingKey: "u1", plan: "staff" });
    expect(staff).toMatchObject({ variant: "treatment", reason: "TARGETING_MATCH" });
    expect(staff.experimentId).toBeUndefined();
    const seen = new Set<string>();
    for (let i = 0; i < 200; i++) {
      const r = set.evaluate("checkout", { targetingKey: `user-${i}` });
      expect(r.experimentId).toBe("exp-1");
      seen.add(r.variant!);
      // The same unit always gets the same, shared resolution object.
      expect(set.evaluate("checkout", { targetingKey: `user-${i}` })).toBe(r);
    }
    expect(seen).toEqual(new Set(["control", "treatment"]));
    const fallback = set.evaluate("checkout", {});
    expect(fallback).toMatchObject({ variant: "control", reason: "DEFAULT" });
    expect(fallback.experimentId).toBeUndefined();
    // A later evaluation of another unit does not inherit the previous one's assignment.
    expect(set.evaluate("checkout", { targetingKey: "u9", plan: "staff" }).experimentId).toBeUndefined();
  });
});

describe("an unknown $ref, as flagd treats it", () => {
  const def: FlagSetDefinition = {
    flags: {
      broken: { state: "ENABLED", variants: { on: true, off: false }, defaultVariant: "off", targeting: { if: [{ $ref: "missing" }, "on", "off"] } },
      fine: { state: "ENABLED", variants: { on: true, off: false }, defaultVariant: "on" },
    },
  };
  it("loads the flag set and fails only that flag's evaluations with PARSE_ERROR", () => {
    const set = compileFlagSet(def);
    expect(set.evaluate("broken", { targetingKey: "u" })).toMatchObject({ reason: "ERROR", errorCode: "PARSE_ERROR" });
    expect(set.evaluate("fine")).toMatchObject({ value: true, reason: "STATIC" });
  });
  it("is still reported to writers that validate before storing", () => {
    expect(validateFlagSet(def)).toEqual([expect.objectContaining({ path: "flags.broken.targeting.if[0].$ref", atEvaluation: true })]);
    expect(() => parseFlagdJson(JSON.stringify(def))).toThrow(FlagSetError);
    expect(parseFlagdJson(JSON.stringify(def), { asFlagd: true })).toBeDefined();
  });
});
