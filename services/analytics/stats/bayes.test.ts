import { describe, expect, it } from "vitest";
import { betaChanceToBeat, normalPosterior } from "./bayes.ts";

describe("betaChanceToBeat", () => {
  // Reference: Beta(1 + successes, 1 + failures) posteriors; the closed-form sum of Evan Miller
  // ("Formulas for Bayesian A/B testing") evaluated with scipy.special.betaln, cross-checked with
  // scipy.integrate.quad(lambda x: beta.pdf(x, aT, bT) * beta.cdf(x, aC, bC), 0, 1).
  const cases: [number, number, number, number, number][] = [
    [100, 1000, 120, 1000, 0.9231834389724246],
    [3, 50, 0, 40, 0.0894366991093908],
    [1000, 20000, 1080, 20000, 0.9641734861428175],
    [10, 10, 9, 10, 0.23809523809523805],
  ];
  it.each(cases)("control %i/%i, treatment %i/%i", (cs, cn, ts, tn, expected) => {
    expect(betaChanceToBeat({ successes: cs, trials: cn }, { successes: ts, trials: tn })).toBeCloseTo(expected, 9);
  });

  it("is symmetric", () => {
    const a = { successes: 40, trials: 500 };
    const b = { successes: 300, trials: 3000 };
    expect(betaChanceToBeat(a, b) + betaChanceToBeat(b, a)).toBeCloseTo(1, 9);
  });
});

describe("normalPosterior", () => {
  it("with a flat prior gives Φ(estimate/se) and flips for lower-is-better", () => {
    expect(normalPosterior(1.959963984540054, 1).chanceToBeatControl).toBeCloseTo(0.975, 12);
    expect(normalPosterior(1.959963984540054, 1, { direction: "lower" }).chanceToBeatControl).toBeCloseTo(0.025, 12);
  });

  it("shrinks towards the prior by precision weighting", () => {
    // Prior N(0, 1²), likelihood N(2, 1²): posterior N(1, 1/2).
    const p = normalPosterior(2, 1, { prior: { mean: 0, standardDeviation: 1 } });
    expect(p.mean).toBeCloseTo(1, 12);
    expect(p.standardDeviation).toBeCloseTo(Math.SQRT1_2, 12);
  });
});
