import { describe, expect, it } from "vitest";
import { compileJsonLogic } from "./compile.ts";
import { splitPath, truthy } from "./values.ts";
import type { JsonValue } from "../types.ts";

const run = (logic: JsonValue, data: Record<string, unknown> = {}, flagKey = "my-flag", now = () => 1_700_000_000_999) => {
  const c = compileJsonLogic(logic, "targeting", { flagKey, now });
  expect(c.issues).toEqual([]);
  return c.evaluate(data);
};
const issuesOf = (logic: JsonValue, evaluators: Record<string, JsonValue> = {}) =>
  compileJsonLogic(logic, "flags.f.targeting", { flagKey: "f", evaluators }).issues;

describe("truthiness (json-logic-engine rules)", () => {
  it.each([
    [0, false],
    ["", false],
    [null, false],
    [false, false],
    [[], false],
    [{}, false],
    [1, true],
    ["0", true],
    [[0], true],
    [{ a: 1 }, true],
    [-1, true],
    ["false", true],
  ])("truthy(%j) is %s", (v, expected) => expect(truthy(v)).toBe(expected));
});

describe("var", () => {
  it("reads top-level and dotted paths", () => {
    expect(run({ var: "a" }, { a: 5 })).toBe(5);
    expect(run({ var: "a.b.c" }, { a: { b: { c: "deep" } } })).toBe("deep");
    expect(run({ var: "list.1" }, { list: ["x", "y"] })).toBe("y");
  });
  it("uses the default for missing and null values, and null without one", () => {
    expect(run({ var: ["a.b", "dflt"] }, {})).toBe("dflt");
    expect(run({ var: ["a", "dflt"] }, { a: null })).toBe("dflt");
    expect(run({ var: ["a", "dflt"] }, { a: 0 })).toBe(0);
    expect(run({ var: "missing" }, {})).toBeNull();
    expect(run({ var: ["x", { var: "y" }] }, { y: "from-y" })).toBe("from-y");
  });
  it("returns the whole context for an empty path", () => {
    const ctx = { a: 1 };
    expect(run({ var: "" }, ctx)).toBe(ctx);
    expect(run({ var: [] }, ctx)).toBe(ctx);
  });
  it("accepts a numeric path and a computed path", () => {
    expect(run({ var: 1 }, { "1": "one" })).toBe("one");
    expect(run({ var: { cat: ["a", ".b"] } }, { a: { b: 2 } })).toBe(2);
  });
  it("injects $flagd.flagKey and $flagd.timestamp (Unix seconds), overriding the context", () => {
    expect(run({ var: "$flagd.flagKey" }, { $flagd: { flagKey: "spoof" } })).toBe("my-flag");
    expect(run({ var: "$flagd.timestamp" })).toBe(1_700_000_000);
    expect(run({ var: "$flagd" })).toEqual({ flagKey: "my-flag", timestamp: 1_700_000_000 });
  });
  it("splits paths with escapes", () => {
    expect(splitPath("a.b")).toEqual(["a", "b"]);
    expect(splitPath("a\\.b.c")).toEqual(["a.b", "c"]);
    expect(run({ var: "a\\.b" }, { "a.b": 1 })).toBe(1);
  });
});

describe("missing, missing_some", () => {
  it("lists missing keys; null counts as present", () => {
    expect(run({ missing: ["a", "b.c", "d"] }, { a: 1, b: { c: null } })).toEqual(["d"]);
    expect(run({ missing: "a" }, {})).toEqual(["a"]);
    expect(run({ missing: { merge: [["a"], "b"] } }, { b: 1 })).toEqual(["a"]);
  });
  it("missing_some returns [] when enough are present", () => {
    expect(run({ missing_some: [1, ["a", "b"]] }, { a: 1 })).toEqual([]);
    expect(run({ missing_some: [2, ["a", "b", "c"]] }, { a: 1 })).toEqual(["b", "c"]);
  });
});

describe("if / ?: / and / or / ! / !!", () => {
  it("chains conditions with an else", () => {
    const rule = { if: [{ "==": [{ var: "x" }, 1] }, "one", { "==": [{ var: "x" }, 2] }, "two", "many"] } as JsonValue;
    expect(run(rule, { x: 1 })).toBe("one");
    expect(run(rule, { x: 2 })).toBe("two");
    expect(run(rule, { x: 3 })).toBe("many");
    expect(run({ "?:": [{ var: "x" }, "yes", "no"] }, { x: [] })).toBe("no");
    expect(run({ if: [{ var: "x" }, "yes"] }, {})).toBeNull();
    expect(run({ if: [] })).toBeNull();
  });
  it("and/or return the deciding operand", () => {
    expect(run({ or: [0, "", { var: "x" }, "last"] }, { x: "hit" })).toBe("hit");
    expect(run({ or: [0, false] })).toBe(false);
    expect(run({ and: [1, { var: "x" }, 3] }, { x: 0 })).toBe(0);
    expect(run({ and: [1, "a"] })).toBe("a");
    expect(run({ and: [] })).toBeNull();
  });
  it("! and !! use JSON Logic truthiness", () => {
    expect(run({ "!": [{ var: "x" }] }, { x: [] })).toBe(true);
    expect(run({ "!": { var: "x" } }, { x: {} })).toBe(true);
    expect(run({ "!!": [{ var: "x" }] }, { x: "0" })).toBe(true);
    expect(run({ "!!": { var: "x" } }, { x: 0 })).toBe(false);
  });
});

describe("comparisons", () => {
  it("== is loose, === strict", () => {
    expect(run({ "==": [{ var: "x" }, 1] }, { x: "1" })).toBe(true);
    expect(run({ "===": [{ var: "x" }, 1] }, { x: "1" })).toBe(false);
    expect(run({ "!=": [{ var: "x" }, "a"] }, { x: "a" })).toBe(false);
    expect(run({ "!==": [{ var: "x" }, 1] }, { x: "1" })).toBe(true);
    expect(run({ "==": [{ var: "x" }, 0] }, { x: null })).toBe(true); // json-logic-engine: null == 0
    expect(run({ "==": [{ var: "x" }, ""] }, { x: null })).toBe(false);
    expect(run({ "==": [{ var: "x" }, true] }, { x: 1 })).toBe(true);
  });
  it("orders numbers and strings, with the 3-argument between form", () => {
    expect(run({ "<": [{ var: "x" }, 10] }, { x: 9 })).toBe(true);
    expect(run({ ">=": [{ var: "x" }, 10] }, { x: "10" })).toBe(true);
    expect(run({ "<": [{ var: "a" }, { var: "b" }] }, { a: "apple", b: "banana" })).toBe(true);
    expect(run({ "<": [1, { var: "x" }, 3] }, { x: 2 })).toBe(true);
    expect(run({ "<": [1, { var: "x" }, 3] }, { x: 3 })).toBe(false);
    expect(run({ "<=": [1, { var: "x" }, 3] }, { x: 3 })).toBe(true);
    expect(run({ ">": [{ var: "x" }, 5] }, {})).toBe(false);
  });
  it("fails on a non-numeric string compared with a number, like json-logic-engine", () => {
    expect(() => run({ "<": [{ var: "x" }, 5] }, { x: "abc" })).toThrow();
    expect(() => run({ "==": [{ var: "x" }, 5] }, { x: { a: 1 } })).toThrow();
  });
});

describe("arithmetic, max, min", () => {
  it("computes with number coercion", () => {
    expect(run({ "+": [{ var: "a" }, "2", true] }, { a: 1 })).toBe(4);
    expect(run({ "+": [] })).toBe(0);
    expect(run({ "-": [{ var: "a" }, 3] }, { a: 10 })).toBe(7);
    expect(run({ "-": [{ var: "a" }] }, { a: 4 })).toBe(-4);
    expect(run({ "*": [{ var: "a" }, 2, 3] }, { a: 2 })).toBe(12);
    expect(run({ "/": [{ var: "a" }, 4] }, { a: 10 })).toBe(2.5);
    expect(run({ "%": [{ var: "a" }, 4] }, { a: 10 })).toBe(2);
    expect(run({ "+": [{ var: "a" }, 1] }, { a: null })).toBe(1);
    expect(run({ "+": { var: "nums" } }, { nums: [1, 2, 3] })).toBe(6);
  });
  it("fails on NaN and division by zero", () => {
    expect(() => run({ "+": [{ var: "a" }, 1] }, { a: "x" })).toThrow();
    expect(() => run({ "/": [1, { var: "a" }] }, { a: 0 })).toThrow();
    expect(() => run({ "%": [1, { var: "a" }] }, { a: 0 })).toThrow();
    expect(() => run({ "*": [{ var: "a" }, 2] }, { a: [1] })).toThrow();
  });
  it("max/min take numbers only", () => {
    expect(run({ max: [1, { var: "a" }, 3] }, { a: 7 })).toBe(7);
    expect(run({ min: [1, { var: "a" }, 3] }, { a: -7 })).toBe(-7);
    expect(() => run({ max: [1, { var: "a" }] }, { a: "7" })).toThrow();
  });
  it("fails at build time on a literal that is not a number", () => {
    const c = compileJsonLogic({ "+": ["abc", { var: "x" }] }, "t", { flagKey: "f" });
    expect(c.buildError).toBeDefined();
    expect(() => c.evaluate({ x: 1 })).toThrow();
  });
});

describe("map, filter, reduce, all, none, some, merge, in", () => {
  it("iterates with the element as data", () => {
    expect(run({ map: [{ var: "xs" }, { "*": [{ var: "" }, 2] }] }, { xs: [1, 2] })).toEqual([2, 4]);
    expect(run({ filter: [{ var: "xs" }, { ">": [{ var: "" }, 1] }] }, { xs: [1, 2, 3] })).toEqual([2, 3]);
    expect(run({ reduce: [{ var: "xs" }, { "+": [{ var: "accumulator" }, { var: "current" }] }, 10] }, { xs: [1, 2] })).toBe(13);
    expect(run({ map: [{ var: "missing" }, { var: "" }] })).toEqual([]);
  });
  it("all is false on an empty array; some/none", () => {
    expect(run({ all: [{ var: "xs" }, { ">": [{ var: "" }, 0] }] }, { xs: [] })).toBe(false);
    expect(run({ all: [{ var: "xs" }, { ">": [{ var: "" }, 0] }] }, { xs: [1, 2] })).toBe(true);
    expect(run({ some: [{ var: "xs" }, { "==": [{ var: "" }, "b"] }] }, { xs: ["a", "b"] })).toBe(true);
    expect(run({ none: [{ var: "xs" }, { "==": [{ var: "" }, "b"] }] }, { xs: ["a", "b"] })).toBe(false);
    expect(run({ some: [{ var: "objs" }, { "==": [{ var: "role" }, "admin"] }] }, { objs: [{ role: "admin" }] })).toBe(true);
  });
  it("all and some are false, none true, over a missing, null or falsy subject (flagd's jsonlogic)", () => {
    const positive = { ">": [{ var: "" }, 0] };
    for (const data of [{}, { xs: null }, { xs: 0 }, { xs: "" }, { xs: false }, { xs: [] }]) {
      expect(run({ all: [{ var: "xs" }, positive] }, data), JSON.stringify(data)).toBe(false);
      expect(run({ some: [{ var: "xs" }, positive] }, data), JSON.stringify(data)).toBe(false);
      expect(run({ none: [{ var: "xs" }, positive] }, data), JSON.stringify(data)).toBe(true);
    }
    expect(run({ all: [{ var: "xs" }, positive] }, { xs: [1, 0] })).toBe(false);
  });
  it("does not see $flagd inside an iterator (the element is the data)", () => {
    expect(run({ map: [[1], { var: "$flagd.flagKey" }] })).toEqual([null]);
  });
  it("merge flattens one level; in searches arrays and substrings", () => {
    expect(run({ merge: [[1, 2], 3, [[4]], { var: "x" }] }, { x: [5] })).toEqual([1, 2, 3, [4], 5]);
    expect(run({ in: [{ var: "c" }, ["de", "fr"]] }, { c: "fr" })).toBe(true);
    expect(run({ in: ["ell", { var: "s" }] }, { s: "hello" })).toBe(true);
    expect(run({ in: ["x", { var: "missing" }] })).toBe(false);
    // flagd's jsonlogic: a haystack that is neither a string nor an array contains nothing.
    expect(run({ in: ["x", { var: "n" }] }, { n: 5 })).toBe(false);
    expect(run({ in: ["x", { var: "o" }] }, { o: { x: 1 } })).toBe(false);
    expect(run({ in: [{ var: "x" }, [1, 2]] }, { x: 2 })).toBe(true);
  });
});

describe("cat, substr", () => {
  it("concatenates; a null variable reads 'null', a null literal in a constant is skipped", () => {
    expect(run({ cat: ["a", { var: "x" }, 1] }, { x: "b" })).toBe("ab1");
    expect(run({ cat: ["a", { var: "x" }] }, {})).toBe("anull");
    expect(run({ cat: ["a", null, "b"] })).toBe("ab");
  });
  it("substr takes start and length, negative values from the end", () => {
    expect(run({ substr: [{ var: "s" }, 1] }, { s: "hello" })).toBe("ello");
    expect(run({ substr: [{ var: "s" }, 1, 3] }, { s: "hello" })).toBe("ell");
    expect(run({ substr: [{ var: "s" }, -3] }, { s: "hello" })).toBe("llo");
    expect(run({ substr: [{ var: "s" }, 1, -1] }, { s: "hello" })).toBe("ell");
    expect(() => run({ substr: [{ var: "s" }, 1] }, { s: 5 })).toThrow();
  });
});

describe("starts_with, ends_with", () => {
  it("compare strings, null on bad arguments", () => {
    expect(run({ starts_with: [{ var: "e" }, "beta."] }, { e: "beta.x" })).toBe(true);
    expect(run({ ends_with: [{ var: "e" }, "@x.io"] }, { e: "a@x.io" })).toBe(true);
    expect(run({ ends_with: [{ var: "e" }, "@x.io"] }, { e: 5 })).toBeNull();
    expect(run({ starts_with: [{ var: "e" }, "a"] }, {})).toBeNull();
  });
});

describe("sem_ver", () => {
  it.each([
    ["1.2.3", "=", "1.2.3", true],
    ["v1.2.3", "=", "1.2.3", true],
    ["V1.2.3", "=", "v1.2.3", true],
    ["1.2.3", "!=", "1.2.4", true],
    ["1.2.3", "<", "1.10.0", true],
    ["2.0.0", ">", "1.99.99", true],
    ["1.0.0-alpha", "<", "1.0.0", true],
    ["1.0.0-alpha", "<", "1.0.0-alpha.1", true],
    ["1.0.0-alpha.beta", "<", "1.0.0-beta", true],
    ["1.0.0-beta.2", "<", "1.0.0-beta.11", true],
    ["1.0.0-rc.1", "<", "1.0.0", true],
    ["1.0.0-1", "<", "1.0.0-a", true],
    ["1.2.3+build.1", "=", "1.2.3+build.2", true],
    ["1.2.3", ">=", "1.2.3", true],
    ["1.2.3", "<=", "1.2.2", false],
    ["1.5.0", "^", "1.0.0", true],
    ["2.0.0", "^", "1.9.9", false],
    ["1.2.9", "~", "1.2.0", true],
    ["1.3.0", "~", "1.2.0", false],
    ["2", "=", "2.0.0", true],
    ["2.1", "=", "2.1.0", true],
  ] as const)("%s %s %s is %s", (a, op, b, expected) => {
    expect(run({ sem_ver: [{ var: "v" }, op, b] }, { v: a })).toBe(expected);
  });
  it.each([["not-a-version"], ["1.2.3.4"], ["01.2.3"], ["1.2.3-"], [""], ["1.x"]])("returns null for %j", (bad) => {
    expect(run({ sem_ver: [{ var: "v" }, "=", "1.2.3"] }, { v: bad })).toBeNull();
  });
  it("returns null for a missing version or an unknown operator", () => {
    expect(run({ sem_ver: [{ var: "v" }, ">", "1.0.0"] }, {})).toBeNull();
    expect(run({ sem_ver: [{ var: "v" }, { var: "op" }, "1.0.0"] }, { v: "1.0.0", op: "=>" })).toBeNull();
  });
});

describe("validation issues with paths", () => {
  it("reports unknown operators and arity", () => {
    expect(issuesOf({ if: [{ regex: ["a"] }, "x", "y"] })).toEqual([
      { path: "flags.f.targeting.if[0].regex", message: 'unknown operator "regex"', atEvaluation: true },
    ]);
    expect(issuesOf({ "==": [1] })[0].path).toBe("flags.f.targeting.==");
    expect(issuesOf({ a: 1, b: 2 })[0].path).toBe("flags.f.targeting");
    expect(issuesOf({ sem_ver: [{ var: "v" }, "=>", "1.0.0"] })[0].path).toBe("flags.f.targeting.sem_ver[1]");
    expect(issuesOf({ sem_ver: [{ var: "v" }, ">", "1.x"] })[0].path).toBe("flags.f.targeting.sem_ver[2]");
  });
  it("reports invalid fractional buckets", () => {
    expect(
      issuesOf({
        if: [
          true,
          {
            fractional: [
              ["a", 50],
              ["b", 1.5],
            ],
          },
        ],
      }),
    ).toEqual([{ path: "flags.f.targeting.if[1].fractional[1][1]", message: "a fractional weight must be an integer", atEvaluation: true }]);
    expect(
      issuesOf({
        fractional: [
          ["a", 2147483647],
          ["b", 1],
        ],
      })[0].path,
    ).toBe("flags.f.targeting.fractional");
    expect(issuesOf({ fractional: [["a", 1], "b"] })[0].path).toBe("flags.f.targeting.fractional[1]");
    expect(
      issuesOf({
        fractional: [
          ["a", -3],
          ["b", { var: "w" }],
        ],
      }),
    ).toEqual([]);
  });
  it("reports unknown $ref and $ref cycles, and checks evaluator bodies at their own path", () => {
    expect(issuesOf({ if: [{ $ref: "nope" }, "a", "b"] })).toEqual([
      { path: "flags.f.targeting.if[0].$ref", message: 'unknown $ref "nope": no such entry in $evaluators', atEvaluation: true },
    ]);
    expect(issuesOf({ $ref: "loop" }, { loop: { or: [{ $ref: "loop" }] } })[0].message).toMatch(/cycle/);
    expect(issuesOf({ $ref: "bad" }, { bad: { nope: [] } })).toEqual([
      { path: "$evaluators.bad.nope", message: 'unknown operator "nope"', atEvaluation: true },
    ]);
  });
  it("substitutes $ref at compile time", () => {
    const c = compileJsonLogic({ if: [{ $ref: "adult" }, "yes", "no"] }, "t", { flagKey: "f", evaluators: { adult: { ">=": [{ var: "age" }, 18] } } });
    expect(c.evaluate({ age: 20 })).toBe("yes");
    expect(c.evaluate({ age: 2 })).toBe("no");
  });
});
