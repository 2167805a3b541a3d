/**
 * Per-variant estimates from sufficient statistics over per-unit totals: the mean per unit, a
 * ratio of means (delta method), and CUPED-adjusted means with θ pooled across variants.
 */

/** Pre-period covariate sums for CUPED: Σx, Σx², Σxy (y is the metric, x the covariate). */
export interface CovariateSums {
  sum: number;
  sumSquares: number;
  sumProduct: number;
}

/** Sums over per-unit values y of one variant: n units, Σy, Σy², and optionally a covariate. */
export interface MeanSums {
  n: number;
  sum: number;
  sumSquares: number;
  covariate?: CovariateSums;
}

/** Sums for a ratio metric (per unit: numerator u, denominator d): Σu, Σu², Σd, Σd², Σud. */
export interface RatioSums {
  n: number;
  numerator: { sum: number; sumSquares: number };
  denominator: { sum: number; sumSquares: number };
  sumProduct: number;
}

/** A point estimate with the variance of the estimate (not of a unit) and the units behind it. */
export interface Estimate {
  n: number;
  mean: number;
  variance: number;
}

/** Sample (co)variance with n − 1 in the denominator; clamps rounding noise below zero. */
function sampleCovariance(n: number, sumA: number, sumB: number, sumAB: number, clamp: boolean): number {
  if (n < 2) return NaN;
  const c = (sumAB - (sumA * sumB) / n) / (n - 1);
  return clamp ? Math.max(0, c) : c;
}

/** Mean per unit and its variance s²/n. */
export function meanEstimate(s: MeanSums): Estimate {
  const mean = s.n > 0 ? s.sum / s.n : NaN;
  return { n: s.n, mean, variance: sampleCovariance(s.n, s.sum, s.sum, s.sumSquares, true) / s.n };
}

/**
 * Ratio of means R = Σu/Σd with the delta-method variance
 * Var(R) ≈ (s_uu − 2R s_ud + R² s_dd) / (n μ_d²).
 */
export function ratioEstimate(s: RatioSums): Estimate {
  const { n, numerator: u, denominator: d } = s;
  const mean = u.sum / d.sum;
  const muD = d.sum / n;
  const suu = sampleCovariance(n, u.sum, u.sum, u.sumSquares, true);
  const sdd = sampleCovariance(n, d.sum, d.sum, d.sumSquares, true);
  const sud = sampleCovariance(n, u.sum, d.sum, s.sumProduct, false);
  const variance = Math.max(0, suu - 2 * mean * sud + mean * mean * sdd) / (n * muD * muD);
  return { n, mean, variance };
}

export interface CupedEstimates {
  /** Pooled regression slope of y on x, within variants. */
  theta: number;
  /** Adjusted estimates, one per variant in input order. */
  adjusted: Estimate[];
  /** The plain means, for reference. */
  unadjusted: Estimate[];
  /** Per variant, 1 − Var(adjusted)/Var(unadjusted). */
  varianceReduction: number[];
}

/**
 * CUPED (Deng, Xu, Kohavi & Walker 2013). θ = Σ_v S_xy,v / Σ_v S_xx,v pools the within-variant
 * centred cross products, so a treatment effect on y does not leak into θ. Each variant's mean is
 * moved by θ times its covariate's distance from the grand covariate mean:
 * ȳ*_v = ȳ_v − θ (x̄_v − x̄), Var(ȳ*_v) = (s_yy − 2θ s_xy + θ² s_xx)/n_v.
 * θ and x̄ are treated as known, the usual practice (their estimation error is O(1/n)).
 * Every variant must carry `covariate`.
 */
export function cupedEstimates(variants: readonly MeanSums[]): CupedEstimates {
  let sxy = 0;
  let sxx = 0;
  let totalX = 0;
  let totalN = 0;
  for (const v of variants) {
    const c = v.covariate;
    if (!c) throw new Error("cupedEstimates: every variant needs covariate sums");
    if (v.n < 1) continue;
    sxy += c.sumProduct - (v.sum * c.sum) / v.n;
    sxx += Math.max(0, c.sumSquares - (c.sum * c.sum) / v.n);
    totalX += c.sum;
    totalN += v.n;
  }
  const theta = sxx > 0 ? sxy / sxx : 0;
  const grandX = totalN > 0 ? totalX / totalN : 0;
  const unadjusted = variants.map(meanEstimate);
  const adjusted = variants.map((v, i) => {
    const c = v.covariate!;
    const vyy = sampleCovariance(v.n, v.sum, v.sum, v.sumSquares, true);
    const vxx = sampleCovariance(v.n, c.sum, c.sum, c.sumSquares, true);
    const vxy = sampleCovariance(v.n, v.sum, c.sum, c.sumProduct, false);
    const mean = unadjusted[i].mean - theta * (c.sum / v.n - grandX);
    const variance = Math.max(0, vyy - 2 * theta * vxy + theta * theta * vxx) / v.n;
    return { n: v.n, mean, variance };
  });
  const varianceReduction = adjusted.map((a, i) => 1 - a.variance / unadjusted[i].variance);
  return { theta, adjusted, unadjusted, varianceReduction };
}
