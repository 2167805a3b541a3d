/**
 * How operator errors behave inside `if` (flagd #1874, flagd-testbed's @operator-errors): flagd's
 * own operators answer null on bad input, so an `if` with an else takes the else branch and one
 * without falls to the default; errors of the standard operators fail the evaluation. Each case is
 * checked against flagd-core, flagd's JS in-process core, as well as by its expected answer.
 */
import { FlagdCore } from "@openfeature/flagd-core";
import { describe, expect, it } from "vitest";
import { compileFlagSet } from "./flag-set.ts";
import type { JsonValue } from "./types.ts";

const flags = (targeting: JsonValue) => ({
  flags: { f: { state: "ENABLED" as const, variants: { one: "one", two: "two" }, defaultVariant: "two", targeting } },
});

function both(targeting: JsonValue, context: Record<string, JsonValue>) {
  const vane = compileFlagSet(flags(targeting)).evaluate("f", context, "string");
  const core = new FlagdCore();
  core.setConfigurations(JSON.stringify(flags(targeting)));
  const ref = core.resolveStringEvaluation("f", "code", context);
  return { vane: { value: "value" in vane ? vane.value : undefined, reason: vane.reason }, ref: { value: ref.value, reason: ref.reason } };
}

describe("operator errors inside if", () => {
  const elseCases: [string, JsonValue, Record<string, JsonValue>][] = [
    ["starts_with on a number", { if: [{ starts_with: [{ var: "num" }, "abc"] }, "one", "two"] }, { num: 123 }],
    ["ends_with with one argument", { if: [{ ends_with: [{ var: "s" }] }, "one", "two"] }, { s: "abc" }],
    ["sem_ver on a non-version", { if: [{ sem_ver: [{ var: "v" }, ">=", "1.0.0"] }, "one", "two"] }, { v: "not-a-version" }],
    ["sem_ver with two arguments", { if: [{ sem_ver: [{ var: "v" }, ">="] }, "one", "two"] }, { v: "1.0.0" }],
    [
      "fractional without a targeting key",
      {
        if: [
          {
            fractional: [
              ["one", 1],
              ["two", 1],
            ],
          },
          "one",
          "two",
        ],
      },
      {},
    ],
    [
      "fractional with a numeric targeting key",
      {
        if: [
          {
            fractional: [
              ["one", 1],
              ["two", 1],
            ],
          },
          "one",
          "two",
        ],
      },
      { targetingKey: 7 },
    ],
  ];
  for (const [name, targeting, context] of elseCases) {
    it(`${name}: the else branch (TARGETING_MATCH)`, () => {
      const { vane, ref } = both(targeting, context);
      expect(vane).toEqual({ value: "two", reason: "TARGETING_MATCH" });
      if (!name.includes("numeric targeting key")) expect(ref).toEqual(vane); // flagd-core hashes a numeric key; flagd's evaluator does not
    });
  }

  it("without an else, the flag's default (DEFAULT)", () => {
    const { vane, ref } = both({ if: [{ starts_with: [{ var: "num" }, "abc"] }, "one"] }, { num: 123 });
    expect(vane).toEqual({ value: "two", reason: "DEFAULT" });
    expect(ref).toEqual(vane);
  });

  it("an error of a standard operator fails the evaluation, else branch or not", () => {
    const { vane, ref } = both({ if: [{ "<": [{ var: "a" }, 1] }, "one", "two"] }, { a: "zzz" });
    expect(vane.reason).toBe("ERROR");
    expect(ref.reason).toBe("ERROR");
  });
});
