import { describe, expect, it } from "vitest";
import { betaChanceToBeat } from "./bayes.ts";
import { normalCdf } from "./distributions.ts";
import { thompsonSampling } from "./bandit.ts";

describe("thompsonSampling", () => {
  const draws = 40_000;
  const mcTolerance = (p: number) => 4 * Math.sqrt((p * (1 - p)) / draws);

  it("two Beta arms: P(best) matches the exact chance to beat", () => {
    const arms = [
      { successes: 100, trials: 1000 },
      { successes: 120, trials: 1000 },
    ];
    const exact = betaChanceToBeat(arms[0], arms[1]); // 0.92318…, see bayes.test.ts
    const r = thompsonSampling(arms, { draws, seed: 7 });
    expect(Math.abs(r.probabilityBest[1] - exact)).toBeLessThan(mcTolerance(exact));
    expect(r.probabilityBest[0] + r.probabilityBest[1]).toBeCloseTo(1, 12);
  });

  it("two normal arms: P(best) = Φ((μ₁ − μ₀)/√(s₀² + s₁²)), reversed for lower-is-better", () => {
    const arms = [
      { mean: 10, standardError: 0.3 },
      { mean: 10.4, standardError: 0.4 },
    ];
    const exact = normalCdf(0.4 / 0.5);
    const r = thompsonSampling(arms, { draws, seed: 11 });
    expect(Math.abs(r.probabilityBest[1] - exact)).toBeLessThan(mcTolerance(exact));
    const lower = thompsonSampling(arms, { draws, seed: 11, direction: "lower" });
    expect(Math.abs(lower.probabilityBest[0] - exact)).toBeLessThan(mcTolerance(exact));
  });

  it("is deterministic per seed and respects the weight floor", () => {
    const arms = [
      { successes: 5, trials: 100 },
      { successes: 50, trials: 100 },
      { successes: 45, trials: 100 },
    ];
    const a = thompsonSampling(arms, { seed: 3, minWeight: 0.05 });
    const b = thompsonSampling(arms, { seed: 3, minWeight: 0.05 });
    expect(a).toEqual(b);
    expect(Math.min(...a.weights)).toBeGreaterThanOrEqual(0.05);
    expect(a.weights.reduce((x, y) => x + y, 0)).toBeCloseTo(1, 12);
    expect(() => thompsonSampling(arms, { minWeight: 0.5 })).toThrow(RangeError);
  });
});
