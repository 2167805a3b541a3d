import { describe, expect, it } from "vitest";
import { bayesianLift, bayesianVerdict, betaChanceToBeat, normalPosterior } from "./bayes.ts";
import { fiellerRelative } from "./compare.ts";
import { normalCdf } from "./distributions.ts";
import { createRng } from "./rng.ts";

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

describe("bayesianLift", () => {
  /** Monte Carlo expectations under the posterior, seeded. */
  function monteCarlo(m: number, s: number, f: (x: number) => number, draws = 400_000) {
    const rng = createRng(5);
    let sum = 0;
    for (let i = 0; i < draws; i++) sum += f(m + s * rng.normal());
    return sum / draws;
  }

  it("relative scale with a flat prior: Fieller's interval at z, chance and risk of the difference", () => {
    const control = { mean: 10, variance: 0.04 };
    const treatment = { mean: 10.3, variance: 0.05 };
    const b = bayesianLift(control, treatment);
    const m = 0.3;
    const s = Math.sqrt(0.09);
    expect(b.chanceToWin).toBeCloseTo(normalCdf(m / s), 12);
    const fieller = fiellerRelative({ n: 1, ...control }, { n: 1, ...treatment }, 1.959963984540054);
    expect(b.credibleInterval[0]).toBeCloseTo(fieller[0], 12);
    expect(b.credibleInterval[1]).toBeCloseTo(fieller[1], 12);
    expect(b.risk).toBeCloseTo(monteCarlo(m, s, (x) => Math.max(0, -x)) / 10, 4);
    expect(b.controlRisk).toBeCloseTo(monteCarlo(m, s, (x) => Math.max(0, x)) / 10, 4);
    // Lower is better: the same posterior, the roles of gain and loss swapped.
    const lower = bayesianLift(control, treatment, { direction: "lower" });
    expect(lower.chanceToWin).toBeCloseTo(1 - b.chanceToWin, 12);
    expect(lower.risk).toBeCloseTo(b.controlRisk, 12);
  });

  it("absolute scale: normal posterior on the difference, risk as a share of the control's mean", () => {
    const b = bayesianLift({ mean: 4, variance: 0.01 }, { mean: 3.9, variance: 0.02 }, { scale: "absolute" });
    const m = -0.1;
    const s = Math.sqrt(0.03);
    expect(b.credibleInterval[0]).toBeCloseTo(m - 1.959963984540054 * s, 12);
    expect(b.risk).toBeCloseTo(monteCarlo(m, s, (x) => Math.max(0, -x)) / 4, 4);
    expect(b.controlRisk).toBeCloseTo(monteCarlo(m, s, (x) => Math.max(0, x)) / 4, 4);
  });

  it("an informative prior on the relative lift shrinks the estimate towards it", () => {
    const data = [
      { mean: 10, variance: 0.25 },
      { mean: 11, variance: 0.25 },
    ] as const;
    const flat = bayesianLift(...data);
    const sceptical = bayesianLift(...data, { prior: { mean: 0, standardDeviation: 0.02 } });
    expect(sceptical.chanceToWin).toBeLessThan(flat.chanceToWin);
    expect(sceptical.credibleInterval[1] - sceptical.credibleInterval[0]).toBeLessThan(flat.credibleInterval[1] - flat.credibleInterval[0]);
  });

  it("decision rule: chance and risk must both pass", () => {
    const rule = { chanceToWin: 0.95, risk: 0.0025 };
    expect(bayesianVerdict({ credibleInterval: [0, 0], chanceToWin: 0.97, risk: 0.001, controlRisk: 0.05 }, rule)).toBe("better");
    expect(bayesianVerdict({ credibleInterval: [0, 0], chanceToWin: 0.97, risk: 0.01, controlRisk: 0.05 }, rule)).toBe("inconclusive");
    expect(bayesianVerdict({ credibleInterval: [0, 0], chanceToWin: 0.02, risk: 0.05, controlRisk: 0.001 }, rule)).toBe("worse");
  });
});
