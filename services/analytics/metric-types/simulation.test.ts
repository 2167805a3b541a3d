/**
 * Seeded Monte Carlo checks of the metric types' statistics: A/A false-positive rates of the
 * quantile comparison with events clustered by unit (and that ignoring the clustering would be
 * miscalibrated on the same data), and the coverage and narrowing of CUPED for ratio metrics.
 * Rates are checked against 4 binomial standard deviations around the nominal rate.
 */
import { describe, expect, it } from "vitest";
import { analyzeMetric, createRng, normalSf, type Rng } from "../stats/index.ts";
import { arraySource, quantileEstimate } from "./quantile.ts";
import { ratioCuped, type RatioCupedSums } from "./ratio-cuped.ts";

function expectRate(hits: number, trials: number, nominal: number) {
  const sd = Math.sqrt((nominal * (1 - nominal)) / trials);
  const rate = hits / trials;
  expect(rate, `rate ${rate} vs nominal ${nominal}`).toBeGreaterThanOrEqual(nominal - 4 * sd);
  expect(rate, `rate ${rate} vs nominal ${nominal}`).toBeLessThanOrEqual(nominal + 4 * sd);
}

/** Units with 1–8 events each; a unit's values share a lognormal level (strong clustering), lognormal around it. */
function clusteredEvents(rng: Rng, units: number, scale = 1) {
  const events: { unit: number; value: number }[] = [];
  for (let u = 0; u < units; u++) {
    const level = Math.exp(0.8 * rng.normal());
    const k = 1 + Math.floor(8 * rng.uniform());
    for (let j = 0; j < k; j++) events.push({ unit: u, value: scale * 100 * level * Math.exp(0.3 * rng.normal()) });
  }
  return events;
}

describe("quantile metrics: A/A false-positive rate with events clustered by unit", () => {
  for (const q of [0.5, 0.9]) {
    it(`p${q * 100}, 300 units per arm`, async () => {
      const rng = createRng(Math.round(q * 1000));
      const runs = 1000;
      let rejections = 0;
      let naiveRejections = 0;
      for (let r = 0; r < runs; r++) {
        const arms = [clusteredEvents(rng, 300), clusteredEvents(rng, 300)];
        const estimates = await Promise.all(arms.map((events) => quantileEstimate(arraySource(events), q)));
        const m = analyzeMetric({ key: "p", kind: "estimate", variants: estimates });
        if (m.variants[0].pValue < 0.05) rejections++;
        // The same inversion with the binomial variance q(1 − q)/events, as if events were independent.
        const naive = await Promise.all(
          arms.map(async (events) => {
            const s = arraySource(events);
            const se = Math.sqrt((q * (1 - q)) / events.length);
            const width = (await s.quantile(Math.min(1, q + 1.96 * se))) - (await s.quantile(Math.max(0, q - 1.96 * se)));
            return { mean: await s.quantile(q), variance: (width / (2 * 1.96)) ** 2 };
          }),
        );
        const z = Math.abs(naive[1].mean - naive[0].mean) / Math.sqrt(naive[0].variance + naive[1].variance);
        if (2 * normalSf(z) < 0.05) naiveRejections++;
      }
      expectRate(rejections, runs, 0.05);
      // The data is clustered enough that the independent-events variance would not do.
      expect(naiveRejections / runs).toBeGreaterThan(0.1);
    });
  }

  it("p99, 1,000 units per arm: valid but conservative (about 3%; few events lie beyond p99)", async () => {
    const rng = createRng(99);
    const runs = 300;
    let rejections = 0;
    for (let r = 0; r < runs; r++) {
      const estimates = await Promise.all(
        [clusteredEvents(rng, 1000), clusteredEvents(rng, 1000)].map((events) => quantileEstimate(arraySource(events), 0.99)),
      );
      if (analyzeMetric({ key: "p", kind: "estimate", variants: estimates }).variants[0].pValue < 0.05) rejections++;
    }
    expect(rejections / runs).toBeLessThanOrEqual(0.05 + 4 * Math.sqrt((0.05 * 0.95) / runs));
    expect(rejections / runs).toBeGreaterThan(0.01);
  });

  it("finds a real shift: every value 30% lower in treatment, p90, 300 units per arm", async () => {
    const rng = createRng(7);
    let detected = 0;
    for (let r = 0; r < 200; r++) {
      const estimates = await Promise.all([clusteredEvents(rng, 300), clusteredEvents(rng, 300, 0.7)].map((e) => quantileEstimate(arraySource(e), 0.9)));
      const v = analyzeMetric({ key: "p", kind: "estimate", variants: estimates }).variants[0];
      if (v.pValue < 0.05 && v.absolute.estimate < 0) detected++;
    }
    expect(detected / 200).toBeGreaterThan(0.6);
  });
});

/**
 * Per unit: a propensity p (mean 1), sessions d and pre-period sessions d₀ uniform on 1..4,
 * revenue per session p·lift·Exp(1) (pre-period: p·Exp(1)). The true ratio is `lift`.
 */
function ratioUnits(rng: Rng, n: number, lift: number): RatioCupedSums {
  const s: RatioCupedSums = {
    n,
    numerator: { sum: 0, sumSquares: 0 },
    denominator: { sum: 0, sumSquares: 0 },
    sumProduct: 0,
    pre: { numerator: { sum: 0, sumSquares: 0 }, denominator: { sum: 0, sumSquares: 0 }, sumProduct: 0, cross: { uu: 0, ud: 0, du: 0, dd: 0 } },
  };
  for (let i = 0; i < n; i++) {
    const p = rng.gamma(2) / 2;
    const d = 1 + Math.floor(4 * rng.uniform());
    const d0 = 1 + Math.floor(4 * rng.uniform());
    const u = p * lift * rng.gamma(d);
    const u0 = p * rng.gamma(d0);
    s.numerator.sum += u;
    s.numerator.sumSquares += u * u;
    s.denominator.sum += d;
    s.denominator.sumSquares += d * d;
    s.sumProduct += u * d;
    s.pre.numerator.sum += u0;
    s.pre.numerator.sumSquares += u0 * u0;
    s.pre.denominator.sum += d0;
    s.pre.denominator.sumSquares += d0 * d0;
    s.pre.sumProduct += u0 * d0;
    s.pre.cross.uu += u * u0;
    s.pre.cross.ud += u * d0;
    s.pre.cross.du += d * u0;
    s.pre.cross.dd += d * d0;
  }
  return s;
}

describe("ratio metrics with CUPED", () => {
  it("A/A: false-positive rate near 5%, 500 units per arm", () => {
    const rng = createRng(11);
    const runs = 3000;
    let rejections = 0;
    for (let r = 0; r < runs; r++) {
      const c = ratioCuped([ratioUnits(rng, 500, 1), ratioUnits(rng, 500, 1)])!;
      const m = analyzeMetric({ key: "r", kind: "estimate", variants: c.adjusted, cuped: { theta: c.theta, unadjusted: c.unadjusted } });
      if (m.variants[0].pValue < 0.05) rejections++;
    }
    expectRate(rejections, runs, 0.05);
  });

  it("covers a known 10% lift 95% of the time, with a narrower interval than without CUPED", () => {
    const rng = createRng(12);
    const runs = 3000;
    let covered = 0;
    let reduction = 0;
    for (let r = 0; r < runs; r++) {
      const c = ratioCuped([ratioUnits(rng, 500, 1), ratioUnits(rng, 500, 1.1)])!;
      const v = analyzeMetric({ key: "r", kind: "estimate", variants: c.adjusted, cuped: { theta: c.theta, unadjusted: c.unadjusted } }).variants[0];
      if (v.absolute.ci[0] <= 0.1 && 0.1 <= v.absolute.ci[1]) covered++;
      reduction += v.cuped!.liftVarianceReduction;
    }
    expectRate(covered, runs, 0.95);
    expect(reduction / runs).toBeGreaterThan(0.1);
  });

  it("declines without a pre-period denominator", () => {
    const rng = createRng(13);
    const a = ratioUnits(rng, 50, 1);
    const b = { ...ratioUnits(rng, 50, 1) };
    b.pre = { ...b.pre, denominator: { sum: 0, sumSquares: 0 } };
    expect(ratioCuped([a, b])).toBeNull();
  });
});
