import { describe, expect, it } from "vitest";
import { compareEstimates, relativeLift } from "./compare.ts";
import { cupedEstimates, meanEstimate, ratioEstimate, type MeanSums } from "./estimates.ts";
import { analyzeExperiment, analyzeMetric } from "./experiment.ts";

function sums(ys: readonly number[], xs?: readonly number[]): MeanSums {
  const s: MeanSums = { n: ys.length, sum: 0, sumSquares: 0 };
  for (const y of ys) {
    s.sum += y;
    s.sumSquares += y * y;
  }
  if (xs) {
    s.covariate = { sum: 0, sumSquares: 0, sumProduct: 0 };
    xs.forEach((x, i) => {
      s.covariate!.sum += x;
      s.covariate!.sumSquares += x * x;
      s.covariate!.sumProduct += x * ys[i];
    });
  }
  return s;
}

function close(actual: number, expected: number, rel = 1e-10) {
  expect(Math.abs(actual - expected)).toBeLessThanOrEqual(rel * Math.abs(expected));
}

describe("Welch's t-test", () => {
  // Reference: r = scipy.stats.ttest_ind(b, a, equal_var=False); r.statistic, r.pvalue, r.df,
  // r.confidence_interval(0.95) (scipy 1.17.1). The difference is mean(b) − mean(a).
  const a = [27.5, 21.0, 19.0, 23.6, 17.0, 17.9, 16.9, 20.1, 21.9, 22.6, 23.1, 19.6, 19.0, 21.7, 21.4];
  const b = [27.1, 22.0, 20.8, 23.4, 23.4, 23.5, 25.8, 22.0, 24.8, 20.2, 21.9, 22.1, 22.9, 20.5, 24.4];
  const c = [17.2, 20.9, 22.6, 18.1, 21.7, 21.4, 23.5, 24.2, 14.7, 21.8];
  const d = [21.5, 22.8, 21.0, 23.0, 21.6, 23.6, 22.5, 20.7, 23.4, 21.8, 20.7, 21.7, 21.5, 22.5, 23.6, 21.5, 22.5, 23.5, 21.5, 21.8];

  it("equal group sizes: statistic, df, p-value and interval match scipy", () => {
    const r = compareEstimates(meanEstimate(sums(a)), meanEstimate(sums(b)));
    close(r.tStatistic, 2.455356398286006);
    close(r.degreesOfFreedom, 24.988529290231416);
    close(r.pValue, 0.021378001462866992, 1e-9);
    close(r.absolute.ci[0], 0.3492370661924069, 1e-9);
    close(r.absolute.ci[1], 3.984096267140929, 1e-9);
  });

  it("unequal sizes and variances: statistic, df, p-value and interval match scipy", () => {
    const r = compareEstimates(meanEstimate(sums(c)), meanEstimate(sums(d)));
    close(r.tStatistic, 1.5654335235985037);
    close(r.degreesOfFreedom, 9.904741248650831);
    close(r.pValue, 0.14884169660532817, 1e-9);
    close(r.absolute.ci[0], -0.6484213253751658, 1e-9);
    close(r.absolute.ci[1], 3.698421325375163, 1e-9);
  });

  it("degenerate inputs: no variance, and fewer than two units", () => {
    const zero = compareEstimates({ n: 100, mean: 0, variance: 0 }, { n: 100, mean: 0, variance: 0 });
    expect(zero.pValue).toBe(1);
    expect(Number.isNaN(zero.relative.estimate)).toBe(true);
    const certain = compareEstimates({ n: 100, mean: 1, variance: 0 }, { n: 100, mean: 2, variance: 0 });
    expect(certain.pValue).toBe(0);
    const tiny = compareEstimates(meanEstimate(sums([1])), meanEstimate(sums([2, 3])));
    expect(Number.isNaN(tiny.pValue)).toBe(true);
  });
});

describe("relative lift (delta method)", () => {
  it("has the delta-method standard error", () => {
    // Var(m_t/m_c) ≈ v_t/m_c² + m_t² v_c/m_c⁴, worked by hand: 0.04/100 + 144·0.01/10⁴ = 0.000544.
    const r = relativeLift({ n: 1000, mean: 10, variance: 0.01 }, { n: 1000, mean: 12, variance: 0.04 });
    close(r.estimate, 0.2, 1e-12);
    close(r.standardError, Math.sqrt(0.000544), 1e-12);
  });
});

describe("ratio metrics (delta method)", () => {
  it("matches the influence-function standard error computed from the raw units", () => {
    // Reference (numpy): R = Σu/Σd; φ = (u − R·d)/mean(d); se = sqrt(var(φ, ddof=1)/n).
    const u = [3.0, 0.0, 12.5, 7.25, 0.0, 20.0, 4.5, 9.0, 1.0, 15.0];
    const dd = [2, 1, 5, 3, 1, 6, 2, 4, 1, 5];
    const s = {
      n: u.length,
      numerator: { sum: 0, sumSquares: 0 },
      denominator: { sum: 0, sumSquares: 0 },
      sumProduct: 0,
    };
    u.forEach((x, i) => {
      s.numerator.sum += x;
      s.numerator.sumSquares += x * x;
      s.denominator.sum += dd[i];
      s.denominator.sumSquares += dd[i] * dd[i];
      s.sumProduct += x * dd[i];
    });
    const e = ratioEstimate(s);
    close(e.mean, 2.408333333333333, 1e-14);
    close(Math.sqrt(e.variance), 0.2656232802736229, 1e-12);
  });
});

describe("CUPED", () => {
  // Three variants; OLS reference: numpy.linalg.lstsq of y on [1, is_variant1, is_variant2, x]
  // gives the pooled within-variant slope θ (coefficient of x) and the adjusted lifts.
  const x = [
    [10.0, 10.9, 9.2, 7.3, 8.6, 7.0, 10.2, 14.0, 8.5, 8.1, 11.5, 11.1],
    [10.3, 7.2, 9.9, 12.1, 6.0, 8.6, 4.3, 6.1, 4.5, 9.3],
    [6.2, 10.8, 10.5, 9.4, 2.4, 8.4, 9.9, 10.3, 5.4, 8.6, 7.1],
  ];
  const y = [
    [6.4, 10.8, 5.7, 5.8, 8.6, 4.4, 7.9, 11.4, 6.9, 4.0, 9.4, 11.6],
    [6.1, 8.5, 9.2, 9.4, 9.8, 9.4, 2.0, 6.0, 5.8, 8.1],
    [5.8, 8.0, 9.2, 9.9, 0.1, 6.6, 6.5, 8.0, 1.4, 5.2, 4.8],
  ];
  const variants = y.map((ys, i) => sums(ys, x[i]));

  it("pooled θ and adjusted lifts equal the OLS regression with variant indicators", () => {
    const c = cupedEstimates(variants);
    close(c.theta, 0.8801107138714108, 1e-12);
    close(c.adjusted[1].mean - c.adjusted[0].mean, 1.3341403682728705, 1e-12);
    close(c.adjusted[2].mean - c.adjusted[0].mean, -0.370943063437215, 1e-12);
    for (const r of c.varianceReduction) expect(r).toBeGreaterThan(0);
  });

  it("analyzeMetric applies CUPED when every variant has a covariate, and reports the reduction", () => {
    const m = analyzeMetric({ key: "spend", kind: "mean", variants });
    expect(m.cuped?.theta).toBeCloseTo(0.8801107138714108, 12);
    const v = m.variants[0];
    expect(v.cuped).not.toBeNull();
    expect(v.cuped!.liftVarianceReduction).toBeGreaterThan(0);
    expect(v.absolute.standardError).toBeLessThan(v.cuped!.unadjustedStandardError * 10);
    const plain = analyzeMetric({ key: "spend", kind: "mean", variants }, { cuped: false });
    expect(plain.cuped).toBeNull();
    expect(v.absolute.standardError ** 2).toBeCloseTo(plain.variants[0].absolute.standardError ** 2 * (1 - v.cuped!.liftVarianceReduction), 12);
  });
});

describe("analyzeExperiment", () => {
  it("corrects across metrics, gives verdicts by direction, and flags SRM", () => {
    const conv = (k: number, n: number): MeanSums => ({ n, sum: k, sumSquares: k });
    const result = analyzeExperiment(
      {
        units: [5210, 4790],
        weights: [50, 50],
        metrics: [
          { key: "signup", kind: "conversion", variants: [conv(500, 5210), conv(560, 4790)] },
          { key: "latency", kind: "mean", direction: "lower", variants: [sums([5, 6, 7, 5, 6, 7, 5, 6]), sums([7, 8, 9, 7, 8, 9, 8, 8])] },
          { key: "clicks", kind: "count", variants: [sums([1, 2, 3, 2, 1]), sums([2, 1, 3, 2, 2])] },
        ],
      },
      { correction: "holm" },
    );
    expect(result.srm?.mismatch).toBe(true); // chi-square 17.64, p = 2.67e-5 (scipy.stats.chisquare)
    const [signup, latency, clicks] = result.metrics;
    expect(signup.variants[0].verdict).toBe("better");
    expect(signup.variants[0].chanceToBeatControl).toBeGreaterThan(0.99);
    expect(latency.variants[0].verdict).toBe("worse");
    expect(latency.variants[0].chanceToBeatControl).toBeLessThan(0.01);
    expect(clicks.variants[0].verdict).toBe("inconclusive");
    for (const m of result.metrics) for (const v of m.variants) expect(v.adjustedPValue).toBeGreaterThanOrEqual(v.pValue);
  });

  it("corrects each family on its own: more decision metrics never dilute a guardrail", () => {
    const conv = (k: number, n: number): MeanSums => ({ n, sum: k, sumSquares: k });
    const guardrail = {
      key: "errors",
      kind: "conversion" as const,
      direction: "lower" as const,
      family: "guardrail",
      variants: [conv(100, 5000), conv(135, 5000)],
    };
    const decisions = Array.from({ length: 8 }, (_, i) => ({ key: `d${i}`, kind: "conversion" as const, variants: [conv(500, 5000), conv(505 + i, 5000)] }));
    const alone = analyzeExperiment({ metrics: [guardrail] }, { correction: "holm" }).metrics[0].variants[0];
    const withMany = analyzeExperiment({ metrics: [...decisions, guardrail] }, { correction: "holm" });
    const g = withMany.metrics.at(-1)!.variants[0];
    expect(g.adjustedPValue).toBe(alone.adjustedPValue);
    expect(g.adjustedPValue).toBe(g.pValue); // a family of one
    expect(g.verdict).toBe("worse");
    // In one family with the eight decision metrics, Holm would multiply its p-value by up to nine.
    const oneFamily = analyzeExperiment({ metrics: [...decisions, { ...guardrail, family: undefined }] }, { correction: "holm" }).metrics.at(-1)!.variants[0];
    expect(oneFamily.adjustedPValue).toBeGreaterThan(g.adjustedPValue);
  });
});
