/**
 * A holdout's membership, seeded and deterministic: the share of units held out is what was asked
 * (within exact binomial bounds), stable for a unit, independent between holdouts, and the
 * evaluator's arm for the exposure is exactly what the engine serves from the compiled rule.
 */
import { describe, expect, it } from "vitest";
import { compileFlagSet } from "#engine";
import { holdoutExposure, isHeldOut } from "../holdout-exposures.ts";
import { heldOutFlagSet } from "./holdout-fixture.ts";

/** Smallest k with P(X ≤ k) ≥ q for X ~ Binomial(n, p) (summed in log space). */
function binomialQuantile(n: number, p: number, q: number): number {
  let logP = n * Math.log(1 - p);
  let cdf = Math.exp(logP);
  for (let k = 0; k < n; k++) {
    if (cdf >= q) return k;
    logP += Math.log((n - k) / (k + 1)) + Math.log(p / (1 - p));
    cdf += Math.exp(logP);
  }
  return n;
}

const N = 20_000;
const keys = Array.from({ length: N }, (_, i) => `unit-${i}`);
const ID_A = "6b1f7c9e-2f7a-4d0e-9a51-3c2d1e0f9a01";
const ID_B = "0d9e8f7a-6b5c-4d3e-8f2a-1b0c9d8e7f60";

describe("holdout membership", () => {
  for (const percent of [1, 5, 20, 50]) {
    it(`holds out ${percent}% of units, within the binomial's 1e-6 bounds`, () => {
      const buckets = percent * 100;
      const held = keys.filter((k) => isHeldOut(ID_A, buckets, k)).length;
      const p = percent / 100;
      expect(held).toBeGreaterThanOrEqual(binomialQuantile(N, p, 1e-6));
      expect(held).toBeLessThanOrEqual(binomialQuantile(N, p, 1 - 1e-6));
    });
  }

  it("is stable for a unit and nested as the share grows, and independent between holdouts", () => {
    const at5 = new Set(keys.filter((k) => isHeldOut(ID_A, 500, k)));
    expect(keys.filter((k) => isHeldOut(ID_A, 500, k))).toEqual([...at5]);
    for (const k of at5) expect(isHeldOut(ID_A, 2000, k)).toBe(true);
    // Another holdout's salt: the overlap of two 20% holdouts is about 4% of units, not 20%.
    const both = keys.filter((k) => isHeldOut(ID_A, 2000, k) && isHeldOut(ID_B, 2000, k)).length;
    expect(both).toBeGreaterThanOrEqual(binomialQuantile(N, 0.04, 1e-6));
    expect(both).toBeLessThanOrEqual(binomialQuantile(N, 0.04, 1 - 1e-6));
  });

  it("gives the exposure the arm the engine serves from the compiled rule, on every flag", () => {
    const def = heldOutFlagSet(ID_A, 1500);
    const engine = compileFlagSet(def);
    for (const key of keys.slice(0, 3000)) {
      for (const f of ["launched", "split"]) {
        const res = engine.evaluate(f, { targetingKey: key });
        const arm = holdoutExposure(res.metadata, { targetingKey: key })?.arm;
        expect([f, key, res.variant, res.reason, arm]).toEqual(
          arm === "holdout" ? [f, key, "off", "DEFAULT", "holdout"] : [f, key, "on", "TARGETING_MATCH", "general"],
        );
      }
    }
    // Without a targeting key nobody is held out, and nothing is exposed.
    expect(engine.evaluate("launched", {}).variant).toBe("on");
    expect(holdoutExposure(engine.evaluate("launched", {}).metadata, {})).toBeUndefined();
  });
});
