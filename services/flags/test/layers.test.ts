import { create } from "@bufbuild/protobuf";
import { describe, expect, it } from "vitest";
import { ConditionSchema, RuleSchema } from "#gen/vane/flags/v1/flags_pb.js";
import { compileFlagSet } from "#engine";
import { compileRules, experimentOf } from "../targeting/compile.ts";

const layerRule = (experimentId: string, start: number, end: number) =>
  create(RuleSchema, {
    conditions: [create(ConditionSchema, { kind: { case: "layer", value: { layerKey: "checkout", start, end } } })],
    outcome: {
      kind: {
        case: "rollout",
        value: {
          experimentId,
          variants: [
            { variant: "a", weight: 1 },
            { variant: "b", weight: 1 },
          ],
        },
      },
    },
  });

describe("layers", () => {
  it("gives experiments with disjoint slices of a layer disjoint units, in proportion", () => {
    const defs = {
      flags: {
        one: { state: "ENABLED" as const, variants: { a: 1, b: 2, off: 0 }, defaultVariant: "off", targeting: compileRules([layerRule("e1", 0, 3000)]) },
        two: { state: "ENABLED" as const, variants: { a: 1, b: 2, off: 0 }, defaultVariant: "off", targeting: compileRules([layerRule("e2", 3000, 10000)]) },
      },
    };
    const set = compileFlagSet(defs as never);
    let inOne = 0;
    let inTwo = 0;
    const n = 20_000;
    for (let i = 0; i < n; i++) {
      const ctx = { targetingKey: `user-${i}` };
      const a = set.evaluate("one", ctx).reason === "TARGETING_MATCH";
      const b = set.evaluate("two", ctx).reason === "TARGETING_MATCH";
      expect(a && b).toBe(false);
      // Every unit falls in exactly one slice: together the slices cover the layer.
      expect(a || b).toBe(true);
      if (a) inOne++;
      if (b) inTwo++;
    }
    expect(inOne / n).toBeGreaterThan(0.28);
    expect(inOne / n).toBeLessThan(0.32);
    expect(inTwo).toBe(n - inOne);
    // No targeting key: in no slice.
    expect(set.evaluate("one", {}).reason).toBe("DEFAULT");
  });

  it("names the experiment a flag's rules assign", () => {
    expect(experimentOf([layerRule("exp-42", 0, 10000)])).toBe("exp-42");
    expect(experimentOf([])).toBeUndefined();
  });
});
