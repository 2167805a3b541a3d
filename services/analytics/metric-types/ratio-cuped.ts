/**
 * CUPED for ratio metrics (Deng, Knoblich & Lu 2018, §3.3; Deng, Xu, Kohavi & Walker 2013): the
 * metric R = Σu/Σd and its pre-exposure counterpart R₀ = Σu₀/Σd₀ are linearised per unit by the
 * delta method, y_i = (u_i − R d_i)/μ_d and x_i = (u₀_i − R₀ d₀_i)/μ_d₀; θ is their within-variant
 * regression slope pooled across variants, and each variant's ratio moves by θ times its R₀'s
 * distance from the pooled R₀: R* = R − θ (R₀ − R̄₀), Var(R*) = (V_y − 2θ C_xy + θ² V_x)/n.
 */
import { ratioEstimate, type Estimate, type RatioSums } from "../stats/index.ts";

/** A ratio metric's sums with the pre-exposure numerator u₀ and denominator d₀ per unit. */
export interface RatioCupedSums extends RatioSums {
  pre: {
    numerator: { sum: number; sumSquares: number };
    denominator: { sum: number; sumSquares: number };
    /** Σu₀d₀ */
    sumProduct: number;
    /** Σu·u₀, Σu·d₀, Σd·u₀, Σd·d₀ */
    cross: { uu: number; ud: number; du: number; dd: number };
  };
}

export interface RatioCuped {
  theta: number;
  adjusted: Estimate[];
  unadjusted: Estimate[];
}

const cov = (n: number, sa: number, sb: number, sab: number) => (sab - (sa * sb) / n) / (n - 1);

/** The adjusted ratios, or null when the pre-period cannot serve (a variant without pre-period denominator or units). */
export function ratioCuped(variants: readonly RatioCupedSums[]): RatioCuped | null {
  if (variants.some((v) => v.n < 2 || !(v.pre.denominator.sum > 0) || !(v.denominator.sum > 0))) return null;
  const parts = variants.map((v) => {
    const { n, numerator: u, denominator: d, pre } = v;
    const u0 = pre.numerator;
    const d0 = pre.denominator;
    const r = u.sum / d.sum;
    const r0 = u0.sum / d0.sum;
    const muD = d.sum / n;
    const muD0 = d0.sum / n;
    const vy = (cov(n, u.sum, u.sum, u.sumSquares) - 2 * r * cov(n, u.sum, d.sum, v.sumProduct) + r * r * cov(n, d.sum, d.sum, d.sumSquares)) / (muD * muD);
    const vx =
      (cov(n, u0.sum, u0.sum, u0.sumSquares) - 2 * r0 * cov(n, u0.sum, d0.sum, pre.sumProduct) + r0 * r0 * cov(n, d0.sum, d0.sum, d0.sumSquares)) /
      (muD0 * muD0);
    const cxy =
      (cov(n, u.sum, u0.sum, pre.cross.uu) -
        r0 * cov(n, u.sum, d0.sum, pre.cross.ud) -
        r * cov(n, d.sum, u0.sum, pre.cross.du) +
        r * r0 * cov(n, d.sum, d0.sum, pre.cross.dd)) /
      (muD * muD0);
    return { n, r, r0, vy: Math.max(0, vy), vx: Math.max(0, vx), cxy };
  });
  const sxx = parts.reduce((a, p) => a + (p.n - 1) * p.vx, 0);
  if (!(sxx > 0)) return null;
  const theta = parts.reduce((a, p) => a + (p.n - 1) * p.cxy, 0) / sxx;
  const grandR0 = variants.reduce((a, v) => a + v.pre.numerator.sum, 0) / variants.reduce((a, v) => a + v.pre.denominator.sum, 0);
  const adjusted = parts.map((p) => ({
    n: p.n,
    mean: p.r - theta * (p.r0 - grandR0),
    variance: Math.max(0, p.vy - 2 * theta * p.cxy + theta * theta * p.vx) / p.n,
  }));
  return { theta, adjusted, unadjusted: variants.map(ratioEstimate) };
}
