import { describe, expect, it } from "vitest";
import { betaCdf, chiSquareSf, normalCdf, normalQuantile, normalSf, studentTCdf, studentTQuantile, studentTTwoSided } from "./distributions.ts";
import { logGamma, regularizedBeta, regularizedGammaQ } from "./special.ts";

/** |actual − expected| ≤ rel·|expected| (plus a tiny absolute floor). */
function close(actual: number, expected: number, rel = 1e-10) {
  expect(Math.abs(actual - expected)).toBeLessThanOrEqual(rel * Math.abs(expected) + 1e-300);
}

// Reference values: scipy 1.17.1 on this machine; each case names the exact call.
describe("special functions", () => {
  it("log-gamma matches scipy.special.gammaln", () => {
    const cases: [number, number][] = [
      [0.1, 2.252712651734206],
      [0.5, 0.5723649429247],
      [3, 0.6931471805599453],
      [10.5, 13.940625219403763],
      [171.2, 707.60092684767],
      [1e5, 1051287.7089736569],
    ];
    for (const [x, expected] of cases) close(logGamma(x), expected, 1e-13);
  });

  it("regularized incomplete beta matches scipy.special.betainc(a, b, x)", () => {
    const cases: [number, number, number, number][] = [
      [0.3, 2.5, 7, 0.6412224629717214],
      [0.9, 50, 3, 0.09663328513725222],
      [0.01, 0.5, 0.5, 0.06376856085851985],
      [0.5, 1000, 1000, 0.4999999999999992],
    ];
    for (const [x, a, b, expected] of cases) close(regularizedBeta(x, a, b), expected, 1e-11);
    close(betaCdf(0.3, 2.5, 7), 0.6412224629717214, 1e-11);
  });

  it("regularized upper incomplete gamma matches scipy.special.gammaincc(a, x)", () => {
    close(regularizedGammaQ(0.5, 2.0), 0.04550026389635857, 1e-12);
    close(regularizedGammaQ(3, 1.0), 0.9196986029286058, 1e-12);
    close(regularizedGammaQ(10, 25.0), 0.0002214766382487835, 1e-11);
  });
});

describe("normal distribution", () => {
  it("quantile matches scipy.stats.norm.ppf(p)", () => {
    expect(normalQuantile(0.5)).toBe(0);
    close(normalQuantile(0.975), 1.959963984540054, 1e-14);
    close(normalQuantile(0.995), 2.5758293035489004, 1e-14);
    close(normalQuantile(1e-6), -4.753424308822899, 1e-12);
    close(normalQuantile(0.999999), 4.753424308817087, 1e-12);
    close(normalQuantile(0.3), -0.5244005127080409, 1e-13);
    expect(normalQuantile(0)).toBe(-Infinity);
    expect(normalQuantile(1)).toBe(Infinity);
  });

  it("cdf and survival match scipy.stats.norm.cdf(z) / norm.sf(z)", () => {
    close(normalCdf(-3.2), 0.0006871379379158471, 1e-12);
    close(normalCdf(-1), 0.15865525393145707, 1e-13);
    close(normalCdf(0.5), 0.6914624612740131, 1e-13);
    close(normalCdf(1.96), 0.9750021048517795, 1e-13);
    close(normalSf(8), 6.22096057427174e-16, 1e-10);
  });
});

describe("Student's t distribution", () => {
  it("quantile matches scipy.stats.t.ppf(p, df) and the printed t table", () => {
    const cases: [number, number, number][] = [
      [0.975, 1, 12.706204736174694],
      [0.975, 2, 4.302652729749462],
      [0.975, 3, 3.1824463052837078],
      [0.975, 10, 2.228138851986274],
      [0.995, 5.5, 3.8499114660010356],
      [0.95, 30, 1.697260886593957],
      [0.975, 1000, 1.9623390808264083],
      [0.001, 7, -4.785289628638334],
    ];
    for (const [p, df, expected] of cases) close(studentTQuantile(p, df), expected, 1e-11);
    // Printed tables (e.g. Fisher & Yates), to their 3 decimals: t(0.975, 10) = 2.228, t(0.995, 20) = 2.845.
    expect(studentTQuantile(0.975, 10)).toBeCloseTo(2.228, 3);
    expect(studentTQuantile(0.995, 20)).toBeCloseTo(2.845, 3);
    expect(studentTQuantile(0.975, Infinity)).toBe(normalQuantile(0.975));
  });

  it("two-sided tail matches 2*scipy.stats.t.sf(|t|, df)", () => {
    close(studentTTwoSided(2.5, 7.3), 0.03965023466560043, 1e-11);
    close(studentTTwoSided(0.1, 4), 0.9251558409394532, 1e-12);
    close(studentTTwoSided(5, 12), 0.0003093112112838888, 1e-11);
    close(studentTTwoSided(1.7, 200.5), 0.09068160362648758, 1e-11);
    close(studentTCdf(-2.5, 7.3), 0.03965023466560043 / 2, 1e-11);
  });
});

describe("chi-square distribution", () => {
  it("survival matches scipy.stats.chi2.sf(x, k) and the printed table", () => {
    close(chiSquareSf(3.841458820694124, 1), 0.04999999999999989, 1e-12);
    close(chiSquareSf(11.0705, 5), 0.0499999554280436, 1e-11);
    close(chiSquareSf(30, 3), 1.3800570312932553e-6, 1e-10);
    close(chiSquareSf(0.5, 2), 0.7788007830714049, 1e-12);
    close(chiSquareSf(120, 100), 0.08440668109369177, 1e-10);
    // Printed table: chi-square 0.999 quantile with 1 df is 10.828.
    expect(chiSquareSf(10.828, 1)).toBeCloseTo(0.001, 5);
  });
});
