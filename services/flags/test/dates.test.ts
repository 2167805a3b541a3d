/**
 * BEFORE / AFTER compare Unix seconds (flagd's dialect has no dates): numbers work exactly, an
 * RFC 3339 string attribute is an evaluation error rather than a silent mismatch.
 */
import { create, fromJson } from "@bufbuild/protobuf";
import { ValueSchema } from "@bufbuild/protobuf/wkt";
import { describe, expect, it } from "vitest";
import { Operator, RuleSchema } from "#gen/vane/flags/v1/flags_pb.js";
import { compileFlagSet } from "#lib/engine/index.ts";
import { compileRules } from "../targeting-compile.ts";

const cutoff = "2026-01-01T00:00:00Z";
const unix = Date.parse(cutoff) / 1000;

function flagWith(operator: Operator.BEFORE | Operator.AFTER) {
  const rules = [
    create(RuleSchema, {
      conditions: [{ kind: { case: "attribute", value: { attribute: "signupTime", operator, values: [fromJson(ValueSchema, cutoff)] } } }],
      outcome: { kind: { case: "variant", value: "yes" } },
    }),
  ];
  const targeting = compileRules(rules)!;
  return compileFlagSet({ flags: { f: { state: "ENABLED", variants: { yes: true, no: false }, defaultVariant: "no", targeting } } });
}

describe("date conditions", () => {
  it("compare a Unix-seconds attribute exactly at the boundary", () => {
    const before = flagWith(Operator.BEFORE);
    const after = flagWith(Operator.AFTER);
    expect(before.evaluate("f", { signupTime: unix - 1 }).variant).toBe("yes");
    expect(before.evaluate("f", { signupTime: unix }).variant).toBe("no");
    expect(after.evaluate("f", { signupTime: unix }).variant).toBe("yes");
    expect(after.evaluate("f", { signupTime: unix - 0.001 }).variant).toBe("no");
  });

  it("fail the evaluation, visibly, for an RFC 3339 string attribute", () => {
    for (const set of [flagWith(Operator.BEFORE), flagWith(Operator.AFTER)]) {
      expect(set.evaluate("f", { signupTime: "2025-06-01T00:00:00Z" })).toMatchObject({ reason: "ERROR", errorCode: "PARSE_ERROR" });
    }
  });

  it("treat a missing attribute as 0: before every date", () => {
    expect(flagWith(Operator.BEFORE).evaluate("f", {}).variant).toBe("yes");
    expect(flagWith(Operator.AFTER).evaluate("f", {}).variant).toBe("no");
  });
});
