import { describe, expect, it } from "vitest";
import { minimumDetectableEffect, sampleSizePerArm } from "./plan.ts";

describe("planning", () => {
  it("sample size per arm for a conversion rate, two- and one-sided", () => {
    // n = 2·p(1−p)·(z₀.₉₇₅ + z₀.₈)²/δ², p = 0.1, δ = 0.01: 0.18 · 2.8015852² / 1e-4 = 14 127.98, up.
    expect(sampleSizePerArm({ mean: 0.1, variance: 0.09 }, 0.1)).toBe(14128);
    // One-sided: (z₀.₉₅ + z₀.₈)² = 2.4864749² → 0.18 · 6.1825573 / 1e-4 = 11 128.60, up.
    expect(sampleSizePerArm({ mean: 0.1, variance: 0.09, sides: "one" }, 0.1)).toBe(11129);
  });

  it("the detectable effect inverts the sample size", () => {
    const base = { mean: 20, variance: 400, alpha: 0.01, power: 0.9 };
    const n = sampleSizePerArm(base, 0.05);
    const mde = minimumDetectableEffect(base, n);
    expect(mde.relative).toBeLessThanOrEqual(0.05);
    expect(mde.relative).toBeGreaterThan(0.05 * 0.9999);
    expect(mde.absolute).toBeCloseTo(mde.relative * 20, 12);
  });

  it("refuses what has no answer", () => {
    expect(() => sampleSizePerArm({ mean: 0, variance: 1 }, 0.1)).toThrow(RangeError);
    expect(() => minimumDetectableEffect({ mean: 1, variance: 1 }, 1)).toThrow(RangeError);
  });
});
