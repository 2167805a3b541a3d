/**
 * Seeded Monte Carlo checks of the frequentist guarantees: false-positive rates under A/A,
 * interval coverage under a known effect, CUPED's narrowing, and the sequential interval under
 * continuous peeking. Each rate is checked against a binomial tolerance of 4 standard deviations
 * around its nominal value (the seeds make the runs deterministic; the tolerance says how far a
 * correct method could land by chance).
 */
import { afterAll, describe, expect, it } from "vitest";
import { bayesianLift, bayesianVerdict } from "./bayes.ts";
import { compareEstimates } from "./compare.ts";
import { normalCdf, normalQuantile } from "./distributions.ts";
import { type Estimate, meanEstimate, ratioEstimate, type MeanSums, type RatioSums } from "./estimates.ts";
import { analyzeMetric } from "./experiment.ts";
import { sampleSizePerArm } from "./plan.ts";
import { createRng, type Rng } from "./rng.ts";

/** The figures docs/statistics.md records; CALIBRATION_REPORT=1 prints them after the run. */
const figures: Record<string, string> = {};
afterAll(() => {
  if (process.env.CALIBRATION_REPORT) console.log(JSON.stringify(figures, null, 2));
});

/** Asserts hits/trials lies within 4 binomial standard deviations of the nominal rate. */
function expectRate(hits: number, trials: number, nominal: number) {
  const sd = Math.sqrt((nominal * (1 - nominal)) / trials);
  const rate = hits / trials;
  expect(rate, `rate ${rate} vs nominal ${nominal}`).toBeGreaterThanOrEqual(nominal - 4 * sd);
  expect(rate, `rate ${rate} vs nominal ${nominal}`).toBeLessThanOrEqual(nominal + 4 * sd);
}

function meanSums(n: number, draw: () => number): MeanSums {
  const s: MeanSums = { n, sum: 0, sumSquares: 0 };
  for (let i = 0; i < n; i++) {
    const y = draw();
    s.sum += y;
    s.sumSquares += y * y;
  }
  return s;
}

/** Per unit: d sessions uniform on 1..4, revenue the sum of d Exp(perSession) values. */
function ratioSums(rng: Rng, n: number, perSession: number): RatioSums {
  const s: RatioSums = { n, numerator: { sum: 0, sumSquares: 0 }, denominator: { sum: 0, sumSquares: 0 }, sumProduct: 0 };
  for (let i = 0; i < n; i++) {
    const d = 1 + Math.floor(4 * rng.uniform());
    const u = rng.gamma(d) * perSession;
    s.numerator.sum += u;
    s.numerator.sumSquares += u * u;
    s.denominator.sum += d;
    s.denominator.sumSquares += d * d;
    s.sumProduct += u * d;
  }
  return s;
}

const covers = (ci: [number, number], truth: number) => ci[0] <= truth && truth <= ci[1];

describe("A/A experiments: false-positive rate of Welch's test is near 5%", () => {
  it("normal metric, 100 units per arm", () => {
    const rng = createRng(1);
    const runs = 4000;
    let rejections = 0;
    let confidentBayes = 0;
    for (let r = 0; r < runs; r++) {
      const c = comparisonOf(
        meanSums(100, () => 10 + 3 * rng.normal()),
        meanSums(100, () => 10 + 3 * rng.normal()),
      );
      if (c.pValue < 0.05) rejections++;
      if (c.chanceToBeatControl > 0.95) confidentBayes++;
    }
    expectRate(rejections, runs, 0.05);
    // Flat-prior chance to beat control is calibrated: above 95% in about 5% of A/A runs.
    expectRate(confidentBayes, runs, 0.05);
  });

  it("skewed (log-normal revenue) metric, 500 units per arm", () => {
    const rng = createRng(2);
    const runs = 2000;
    let rejections = 0;
    const draw = () => Math.exp(rng.normal());
    for (let r = 0; r < runs; r++) if (comparisonOf(meanSums(500, draw), meanSums(500, draw)).pValue < 0.05) rejections++;
    expectRate(rejections, runs, 0.05);
  });

  it("conversion metric, 5% rate, 1000 units per arm", () => {
    const rng = createRng(3);
    const runs = 2000;
    let rejections = 0;
    const draw = () => (rng.uniform() < 0.05 ? 1 : 0);
    for (let r = 0; r < runs; r++) if (comparisonOf(meanSums(1000, draw), meanSums(1000, draw)).pValue < 0.05) rejections++;
    expectRate(rejections, runs, 0.05);
  });

  it("ratio metric (revenue per session), 400 units per arm", () => {
    const rng = createRng(4);
    const runs = 2000;
    let rejections = 0;
    for (let r = 0; r < runs; r++) {
      const c = compareEstimates(ratioEstimate(ratioSums(rng, 400, 2)), ratioEstimate(ratioSums(rng, 400, 2)));
      if (c.pValue < 0.05) rejections++;
    }
    expectRate(rejections, runs, 0.05);
  });
});

function comparisonOf(control: MeanSums, treatment: MeanSums) {
  return compareEstimates(meanEstimate(control), meanEstimate(treatment));
}

describe("A/B experiments with a known effect: 95% intervals cover the truth about 95% of the time", () => {
  it("normal metric: absolute and relative (delta method) intervals", () => {
    const rng = createRng(5);
    const runs = 10_000;
    let absolute = 0;
    let relative = 0;
    for (let r = 0; r < runs; r++) {
      const c = comparisonOf(
        meanSums(200, () => 10 + 4 * rng.normal()),
        meanSums(150, () => 10.5 + 6 * rng.normal()),
      );
      if (covers(c.absolute.ci, 0.5)) absolute++;
      if (covers(c.relative.ci, 0.05)) relative++;
    }
    expectRate(absolute, runs, 0.95);
    expectRate(relative, runs, 0.95);
  });

  it("conversion metric, 10% → 12%", () => {
    const rng = createRng(6);
    const runs = 2000;
    let absolute = 0;
    let relative = 0;
    for (let r = 0; r < runs; r++) {
      const c = comparisonOf(
        meanSums(2000, () => (rng.uniform() < 0.1 ? 1 : 0)),
        meanSums(2000, () => (rng.uniform() < 0.12 ? 1 : 0)),
      );
      if (covers(c.absolute.ci, 0.02)) absolute++;
      if (covers(c.relative.ci, 0.2)) relative++;
    }
    expectRate(absolute, runs, 0.95);
    expectRate(relative, runs, 0.95);
  });

  it("ratio metric, revenue per session 2.0 → 2.2", () => {
    const rng = createRng(7);
    const runs = 2000;
    let absolute = 0;
    let relative = 0;
    for (let r = 0; r < runs; r++) {
      const c = compareEstimates(ratioEstimate(ratioSums(rng, 400, 2)), ratioEstimate(ratioSums(rng, 400, 2.2)));
      if (covers(c.absolute.ci, 0.2)) absolute++;
      if (covers(c.relative.ci, 0.1)) relative++;
    }
    expectRate(absolute, runs, 0.95);
    expectRate(relative, runs, 0.95);
  });
});

describe("CUPED", () => {
  /** y = 5 + 0.8x + N(0, 1.6²) + effect with x ~ N(10, 2²): corr² = 2.56/(2.56 + 2.56) = 0.5. */
  function cupedSums(rng: Rng, n: number, effect: number): MeanSums {
    const s: MeanSums = { n, sum: 0, sumSquares: 0, covariate: { sum: 0, sumSquares: 0, sumProduct: 0 } };
    for (let i = 0; i < n; i++) {
      const x = 10 + 2 * rng.normal();
      const y = 5 + 0.8 * x + 1.6 * rng.normal() + effect;
      s.sum += y;
      s.sumSquares += y * y;
      s.covariate!.sum += x;
      s.covariate!.sumSquares += x * x;
      s.covariate!.sumProduct += x * y;
    }
    return s;
  }

  it("narrows intervals by about √(1 − ρ²), keeps coverage, and keeps the A/A rate", () => {
    const rng = createRng(8);
    const runs = 2000;
    let covered = 0;
    let aaRejections = 0;
    let widthRatio = 0;
    let reduction = 0;
    for (let r = 0; r < runs; r++) {
      const variants = [cupedSums(rng, 300, 0), cupedSums(rng, 300, 0.3)];
      const adjusted = analyzeMetric({ key: "m", kind: "mean", variants }).variants[0];
      const plain = analyzeMetric({ key: "m", kind: "mean", variants }, { cuped: false }).variants[0];
      if (covers(adjusted.absolute.ci, 0.3)) covered++;
      widthRatio += (adjusted.absolute.ci[1] - adjusted.absolute.ci[0]) / (plain.absolute.ci[1] - plain.absolute.ci[0]);
      reduction += adjusted.cuped!.liftVarianceReduction;
      const aa = analyzeMetric({ key: "m", kind: "mean", variants: [cupedSums(rng, 300, 0), cupedSums(rng, 300, 0)] }).variants[0];
      if (aa.pValue < 0.05) aaRejections++;
    }
    expectRate(covered, runs, 0.95);
    expectRate(aaRejections, runs, 0.05);
    expect(widthRatio / runs).toBeGreaterThan(Math.SQRT1_2 - 0.02);
    expect(widthRatio / runs).toBeLessThan(Math.SQRT1_2 + 0.02);
    expect(reduction / runs).toBeGreaterThan(0.47);
    expect(reduction / runs).toBeLessThan(0.53);
  });
});

describe("sequential intervals under continuous peeking", () => {
  const runs = 1000;
  const step = 20; // units per arm between looks
  const looks = 100; // up to 2000 units per arm

  /** Simulates runs; returns how many ever excluded `truth` from the naive and sequential intervals. */
  function peek(seed: number, effect: number) {
    const rng = createRng(seed);
    let naive = 0;
    let sequential = 0;
    let lastWidthRatio = 0;
    for (let r = 0; r < runs; r++) {
      const c: MeanSums = { n: 0, sum: 0, sumSquares: 0 };
      const t: MeanSums = { n: 0, sum: 0, sumSquares: 0 };
      let naiveMissed = false;
      let sequentialMissed = false;
      for (let look = 0; look < looks; look++) {
        for (let i = 0; i < step; i++) {
          const yc = 5 + 2 * rng.normal();
          const yt = 5 + effect + 2 * rng.normal();
          c.sum += yc;
          c.sumSquares += yc * yc;
          t.sum += yt;
          t.sumSquares += yt * yt;
        }
        c.n += step;
        t.n += step;
        const result = compareEstimates(meanEstimate(c), meanEstimate(t), { sequentialTuningUnits: 2000 });
        if (!covers(result.absolute.ci, effect)) naiveMissed = true;
        if (!covers(result.sequential.absoluteCi, effect)) sequentialMissed = true;
        if (look === looks - 1) {
          lastWidthRatio += (result.sequential.absoluteCi[1] - result.sequential.absoluteCi[0]) / (result.absolute.ci[1] - result.absolute.ci[0]);
        }
      }
      if (naiveMissed) naive++;
      if (sequentialMissed) sequential++;
    }
    return { naive, sequential, meanWidthRatio: lastWidthRatio / runs };
  }

  it("A/A: peeking 100 times inflates the naive error rate; the always-valid one stays at or below 5%", () => {
    const { naive, sequential, meanWidthRatio } = peek(9, 0);
    expect(naive / runs).toBeGreaterThan(0.15);
    expect(sequential / runs).toBeLessThanOrEqual(0.05 + 4 * Math.sqrt((0.05 * 0.95) / runs));
    // The price of always-valid inference: a wider interval at the end (about 1.5–2.5×).
    expect(meanWidthRatio).toBeGreaterThan(1);
    expect(meanWidthRatio).toBeLessThan(2.5);
  });

  it("with a real effect, the always-valid interval covers it at every look in at least 95% of runs", () => {
    const { naive, sequential } = peek(10, 0.2);
    expect(naive / runs).toBeGreaterThan(0.15);
    expect(sequential / runs).toBeLessThanOrEqual(0.05 + 4 * Math.sqrt((0.05 * 0.95) / runs));
  });
});

describe("relative intervals on a skewed, zero-inflated metric (5% of units buy, log-normal revenue)", () => {
  const runs = 1000;
  /** One arm's sums after `n` more units: 5% buy, revenue exp(3 + 2·N(0,1)). */
  const grow = (rng: Rng, s: MeanSums, n: number) => {
    for (let i = 0; i < n; i++) {
      const y = rng.uniform() < 0.05 ? Math.exp(3 + 2 * rng.normal()) : 0;
      s.n++;
      s.sum += y;
      s.sumSquares += y * y;
    }
  };
  const excludesZero = (ci: [number, number]) => ci[0] > 0 || ci[1] < 0;
  const bound = 0.05 + 4 * Math.sqrt((0.05 * 0.95) / runs);

  it("A/A at 2,000 units per arm: the relative interval excludes 0 at most 5% of the time, on both sides alike, and exactly when p < 0.05", () => {
    const rng = createRng(21);
    let low = 0;
    let high = 0;
    for (let r = 0; r < runs; r++) {
      const c: MeanSums = { n: 0, sum: 0, sumSquares: 0 };
      const t: MeanSums = { n: 0, sum: 0, sumSquares: 0 };
      grow(rng, c, 2000);
      grow(rng, t, 2000);
      const result = compareEstimates(meanEstimate(c), meanEstimate(t));
      const [lo, hi] = result.relative.ci;
      if (hi < 0) low++;
      if (lo > 0) high++;
      // One test, one answer: the interval and the p-value agree on every run.
      if (Number.isFinite(lo)) expect(excludesZero(result.relative.ci)).toBe(result.pValue < 0.05);
    }
    expect((low + high) / runs).toBeLessThanOrEqual(bound);
    // The delta method's failure was one-sided ("treatment is worse"): no side may dominate.
    expect(Math.abs(low - high) / runs).toBeLessThanOrEqual(4 * Math.sqrt((2 * 0.025) / runs));
  });

  it("A/A peeked daily for two weeks: the always-valid relative interval ever excludes 0 in at most 5% of runs", () => {
    const rng = createRng(22);
    let missed = 0;
    for (let r = 0; r < runs; r++) {
      const c: MeanSums = { n: 0, sum: 0, sumSquares: 0 };
      const t: MeanSums = { n: 0, sum: 0, sumSquares: 0 };
      let excluded = false;
      for (let day = 0; day < 14; day++) {
        grow(rng, c, 150);
        grow(rng, t, 150);
        const result = compareEstimates(meanEstimate(c), meanEstimate(t), { sequentialTuningUnits: 4200 });
        if (Number.isFinite(result.sequential.relativeCi[0]) && excludesZero(result.sequential.relativeCi)) excluded = true;
      }
      if (excluded) missed++;
    }
    expect(missed / runs).toBeLessThanOrEqual(bound);
  });

  it("has no bounded relative interval while the control mean cannot be told from 0 (too few buyers)", () => {
    const rng = createRng(23);
    const c: MeanSums = { n: 0, sum: 0, sumSquares: 0 };
    const t: MeanSums = { n: 0, sum: 0, sumSquares: 0 };
    grow(rng, c, 40); // about two buyers
    grow(rng, t, 40);
    const result = compareEstimates(meanEstimate(c), meanEstimate(t));
    expect(result.relative.ci.every(Number.isNaN)).toBe(true);
    expect(result.sequential.relativeCi.every(Number.isNaN)).toBe(true);
  });
});

describe("calibration per metric type and decision (A/A, 14 daily looks of 150 units per arm)", () => {
  const runs = 1000;
  const upper = (nominal: number) => nominal + 4 * Math.sqrt((nominal * (1 - nominal)) / runs);

  /** A metric type: how one unit is drawn into an arm's sums, and the arm's estimate. */
  interface MetricType<S> {
    empty(): S;
    add(rng: Rng, s: S): void;
    estimate(s: S): Estimate;
  }
  const meanType = (draw: (rng: Rng) => number): MetricType<MeanSums> => ({
    empty: () => ({ n: 0, sum: 0, sumSquares: 0 }),
    add: (rng, s) => {
      const y = draw(rng);
      s.n++;
      s.sum += y;
      s.sumSquares += y * y;
    },
    estimate: meanEstimate,
  });
  const types: Record<string, MetricType<MeanSums> | MetricType<RatioSums>> = {
    "conversion (10%)": meanType((rng) => (rng.uniform() < 0.1 ? 1 : 0)),
    "mean (normal, 10 ± 3)": meanType((rng) => 10 + 3 * rng.normal()),
    "skewed zero-inflated (5% buy, log-normal)": meanType((rng) => (rng.uniform() < 0.05 ? Math.exp(3 + 2 * rng.normal()) : 0)),
    "ratio (revenue per session)": {
      empty: () => ({ n: 0, numerator: { sum: 0, sumSquares: 0 }, denominator: { sum: 0, sumSquares: 0 }, sumProduct: 0 }),
      add: (rng, s) => {
        const d = 1 + Math.floor(4 * rng.uniform());
        const u = rng.gamma(d) * 2;
        s.n++;
        s.numerator.sum += u;
        s.numerator.sumSquares += u * u;
        s.denominator.sum += d;
        s.denominator.sumSquares += d * d;
        s.sumProduct += u * d;
      },
      estimate: ratioEstimate,
    } satisfies MetricType<RatioSums>,
  };

  function simulate<S>(type: MetricType<S>, seed: number) {
    const rng = createRng(seed);
    const hits = { fixed: 0, fixedOneSided: 0, sequential: 0, bayesChance: 0, bayesRule: 0 };
    for (let r = 0; r < runs; r++) {
      const c = type.empty();
      const t = type.empty();
      let ever = false;
      let last = null as null | { c: Estimate; t: Estimate };
      for (let day = 0; day < 14; day++) {
        for (let i = 0; i < 150; i++) {
          type.add(rng, c);
          type.add(rng, t);
        }
        last = { c: type.estimate(c), t: type.estimate(t) };
        if (compareEstimates(last.c, last.t, { sequentialTuningUnits: 4200 }).sequential.pValue < 0.05) ever = true;
      }
      const final = compareEstimates(last!.c, last!.t);
      if (final.pValue < 0.05) hits.fixed++;
      if (compareEstimates(last!.c, last!.t, { sides: "one" }).pValue < 0.05) hits.fixedOneSided++;
      if (ever) hits.sequential++;
      const b = bayesianLift(last!.c, last!.t);
      if (b.chanceToWin >= 0.95) hits.bayesChance++;
      if (bayesianVerdict(b, { chanceToWin: 0.95, risk: 0.0025 }) === "better") hits.bayesRule++;
    }
    return hits;
  }

  Object.entries(types).forEach(([name, type], i) => {
    it(name, () => {
      const h = simulate(type as MetricType<unknown>, 100 + i);
      figures[`A/A ${name}`] =
        `fixed ${pct(h.fixed)}, fixed one-sided ${pct(h.fixedOneSided)}, sequential ever ${pct(h.sequential)}, ` +
        `Bayesian chance ≥ 95% ${pct(h.bayesChance)}, Bayesian rule "better" ${pct(h.bayesRule)}`;
      expectRate(h.fixed, runs, 0.05);
      expectRate(h.fixedOneSided, runs, 0.05);
      // Always valid: at most 5% however often looked at (daily looks use only part of it).
      expect(h.sequential / runs).toBeLessThanOrEqual(upper(0.05));
      // A flat-prior chance to win is calibrated: at least 95% in about 5% of A/A runs.
      expectRate(h.bayesChance, runs, 0.05);
      // The rule adds a risk bound: no more often than the chance alone.
      expect(h.bayesRule).toBeLessThanOrEqual(h.bayesChance);
    });
  });
  const pct = (hits: number) => `${((100 * hits) / runs).toFixed(1)}%`;
});

describe("power against theory", () => {
  const runs = 1000;
  it("a normal metric at the planned size detects the planned effect with the planned power", () => {
    // Baseline 10 ± 3, 5% relative MDE, α = 0.05 two-sided, power 0.8: n per arm from the planner.
    const n = sampleSizePerArm({ mean: 10, variance: 9 }, 0.05);
    const rng = createRng(120);
    let rejections = 0;
    for (let r = 0; r < runs; r++) {
      const c = meanSums(n, () => 10 + 3 * rng.normal());
      const t = meanSums(n, () => 10.5 + 3 * rng.normal());
      if (comparisonOf(c, t).pValue < 0.05) rejections++;
    }
    figures["power, normal metric, planned n"] = `n = ${n} per arm, power ${((100 * rejections) / runs).toFixed(1)}% (planned 80%)`;
    expectRate(rejections, runs, 0.8);
  });

  it("conversions 10% → 11.5%: the rejection rate matches Φ(δ/se − z₀.₉₇₅)", () => {
    const n = 4000;
    const se = Math.sqrt((0.1 * 0.9 + 0.115 * 0.885) / n);
    const theory = normalCdf(0.015 / se - normalQuantile(0.975));
    const rng = createRng(121);
    let rejections = 0;
    for (let r = 0; r < runs; r++) {
      const c = meanSums(n, () => (rng.uniform() < 0.1 ? 1 : 0));
      const t = meanSums(n, () => (rng.uniform() < 0.115 ? 1 : 0));
      if (comparisonOf(c, t).pValue < 0.05) rejections++;
    }
    figures["power, conversions 10% → 11.5%, 4,000 per arm"] = `${((100 * rejections) / runs).toFixed(1)}% (theory ${(100 * theory).toFixed(1)}%)`;
    expectRate(rejections, runs, theory);
  });
});
