/**
 * Numeric and date conditions. BEFORE / AFTER compare Unix seconds (flagd's dialect has no dates):
 * numbers work exactly, an RFC 3339 string attribute is an evaluation error rather than a silent
 * mismatch. A missing attribute never satisfies a comparison (JSON Logic alone would compare it as
 * 0), and flagd files keep their own semantics on import.
 */
import { create, fromJson, toJson } from "@bufbuild/protobuf";
import { ValueSchema } from "@bufbuild/protobuf/wkt";
import { describe, expect, it } from "vitest";
import { ConditionSchema, Operator, RuleSchema } from "#gen/vane/flags/v1/flags_pb.js";
import { compileFlagSet, type JsonValue } from "#engine";
import { compileRules } from "../targeting/compile.ts";
import { importFlagSet } from "../targeting/import.ts";

const cutoff = "2026-01-01T00:00:00Z";
const unix = Date.parse(cutoff) / 1000;

function flagWith(attribute: string, operator: Operator, operand: JsonValue) {
  const rules = [
    create(RuleSchema, {
      conditions: [{ kind: { case: "attribute", value: { attribute, operator, values: [fromJson(ValueSchema, operand)] } } }],
      outcome: { kind: { case: "variant", value: "yes" } },
    }),
  ];
  const targeting = compileRules(rules)!;
  return compileFlagSet({ flags: { f: { state: "ENABLED", variants: { yes: true, no: false }, defaultVariant: "no", targeting } } });
}

describe("date conditions", () => {
  it("compare a Unix-seconds attribute exactly at the boundary", () => {
    const before = flagWith("signupTime", Operator.BEFORE, cutoff);
    const after = flagWith("signupTime", Operator.AFTER, cutoff);
    expect(before.evaluate("f", { signupTime: unix - 1 }).variant).toBe("yes");
    expect(before.evaluate("f", { signupTime: unix }).variant).toBe("no");
    expect(after.evaluate("f", { signupTime: unix }).variant).toBe("yes");
    expect(after.evaluate("f", { signupTime: unix - 0.001 }).variant).toBe("no");
  });

  it("fail the evaluation, visibly, for an RFC 3339 string attribute", () => {
    for (const op of [Operator.BEFORE, Operator.AFTER]) {
      expect(flagWith("signupTime", op, cutoff).evaluate("f", { signupTime: "2025-06-01T00:00:00Z" })).toMatchObject({
        reason: "ERROR",
        errorCode: "PARSE_ERROR",
      });
    }
  });

  it("never match a missing or null attribute, before or after", () => {
    for (const op of [Operator.BEFORE, Operator.AFTER]) {
      expect(flagWith("signupTime", op, cutoff).evaluate("f", {})).toMatchObject({ variant: "no", reason: "DEFAULT" });
      expect(flagWith("signupTime", op, cutoff).evaluate("f", { signupTime: null })).toMatchObject({ variant: "no", reason: "DEFAULT" });
    }
  });
});

describe("numeric conditions", () => {
  const cases: [Operator, number, number, boolean][] = [
    [Operator.LESS_THAN, 18, 17, true],
    [Operator.LESS_THAN, 18, 18, false],
    [Operator.LESS_THAN_OR_EQUAL, 18, 18, true],
    [Operator.GREATER_THAN, 0, 0.5, true],
    [Operator.GREATER_THAN, 0, 0, false],
    [Operator.GREATER_THAN_OR_EQUAL, -5, -5, true],
  ];
  it("compare present numbers exactly", () => {
    for (const [op, operand, value, match] of cases) {
      expect(flagWith("age", op, operand).evaluate("f", { age: value }).variant).toBe(match ? "yes" : "no");
    }
  });

  it("never match a missing attribute, even where 0 would", () => {
    for (const op of [Operator.LESS_THAN, Operator.LESS_THAN_OR_EQUAL, Operator.GREATER_THAN_OR_EQUAL]) {
      const flag = flagWith("age", op, 0 + (op === Operator.LESS_THAN ? 18 : 0));
      expect(flag.evaluate("f", {})).toMatchObject({ variant: "no", reason: "DEFAULT" });
      expect(flag.evaluate("f", { age: 0 }).variant).toBe("yes");
    }
  });
});

describe("flagd comparisons on import", () => {
  const imported = (condition: JsonValue) =>
    importFlagSet({ flags: { f: { state: "ENABLED", variants: { yes: true, no: false }, defaultVariant: "no", targeting: { if: [condition, "yes", null] } } } })
      .flags[0].rules[0].conditions;
  it("map Vane's guarded form back to the numeric operator, alone or among others", () => {
    const guarded: JsonValue = { and: [{ "!==": [{ var: "age" }, null] }, { "<": [{ var: "age" }, 18] }] };
    for (const c of [imported(guarded), imported({ and: [guarded, { "===": [{ var: "plan" }, "pro"] }] })]) {
      expect(toJson(ConditionSchema, c[0])).toEqual({ attribute: { attribute: "age", operator: "OPERATOR_LESS_THAN", values: [18] } });
    }
  });

  it("keep a bare comparison as JSON Logic, so a missing attribute still matches as flagd decides", () => {
    const [c] = imported({ "<": [{ var: "age" }, 18] });
    expect(c.kind.case).toBe("jsonLogic");
    const rules = compileRules([create(RuleSchema, { conditions: [c], outcome: { kind: { case: "variant", value: "yes" } } })])!;
    const set = compileFlagSet({ flags: { f: { state: "ENABLED", variants: { yes: true, no: false }, defaultVariant: "no", targeting: rules } } });
    expect(set.evaluate("f", {}).variant).toBe("yes");
  });
});
