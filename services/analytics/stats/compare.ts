/**
 * One treatment against control: absolute and relative lift with intervals, Welch's t-test,
 * Bayesian chance to beat control and the always-valid (sequential) intervals.
 */
import { normalPosterior, type NormalPrior } from "./bayes.ts";
import { studentTQuantile, studentTTwoSided } from "./distributions.ts";
import type { Estimate } from "./estimates.ts";
import { alwaysValid, mixingVariance } from "./sequential.ts";

export type Direction = "higher" | "lower";
/** "two": a change either way; "one": only an improvement in the metric's direction. */
export type Sides = "two" | "one";

export interface CompareOptions {
  /** Level: two-sided intervals are at 1 − alpha, one-sided bounds at 1 − alpha. Default 0.05. */
  alpha?: number;
  /**
   * Default "two". "one" tests only for an improvement (per `direction`): the p-value is one-sided,
   * and each interval keeps only its bound on the losing side (the other is ±Infinity). The
   * sequential p-value and bound are the two-sided mixture's, kept on the improving side: still
   * valid at alpha (the half-normal mixture's ratio is at least the symmetric one's there), if
   * conservative.
   */
  sides?: Sides;
  /** Whether higher or lower values are better. Default "higher". */
  direction?: Direction;
  /** Total units (both arms) at which the sequential interval is tightest. Default 10 000. */
  sequentialTuningUnits?: number;
  /** Level of the sequential numbers; default `alpha` (a split of it when corrected by Bonferroni). */
  sequentialAlpha?: number;
  /** Normal prior on the relative lift for the Bayesian result; flat on the absolute lift when absent. */
  relativePrior?: NormalPrior;
}

export interface Interval {
  estimate: number;
  standardError: number;
  /** [lower, upper] at 1 − alpha. */
  ci: [number, number];
}

export interface Comparison {
  /** Treatment minus control, in metric units. */
  absolute: Interval;
  /**
   * Treatment / control − 1. The interval is Fieller's (the lifts the same Welch test does not
   * reject), so it excludes 0 exactly when `pValue` < alpha; its bounds are NaN when the control's
   * mean cannot be told from 0 (no bounded interval exists). The standard error is the delta
   * method's, for display and the Bayesian prior.
   */
  relative: Interval;
  tStatistic: number;
  /** Welch–Satterthwaite degrees of freedom. */
  degreesOfFreedom: number;
  /** Welch p-value for "no difference": two-sided, or one-sided per `sides`. */
  pValue: number;
  /** Posterior probability that the treatment is better (per `direction`). */
  chanceToBeatControl: number;
  /** Always-valid intervals and p-value; safe to look at as often as wanted. */
  sequential: {
    absoluteCi: [number, number];
    relativeCi: [number, number];
    pValue: number;
  };
}

/**
 * Welch–Satterthwaite degrees of freedom from the variances of the two means:
 * (v_c + v_t)² / (v_c²/(n_c − 1) + v_t²/(n_t − 1)).
 */
export function welchDegreesOfFreedom(control: Estimate, treatment: Estimate): number {
  const denominator = control.variance ** 2 / (control.n - 1) + treatment.variance ** 2 / (treatment.n - 1);
  if (!(denominator > 0)) return control.n + treatment.n - 2;
  return (control.variance + treatment.variance) ** 2 / denominator;
}

/**
 * Delta-method relative lift r = m_t/m_c − 1 for independent arms:
 * Var(r) ≈ v_t/m_c² + m_t² v_c/m_c⁴.
 */
export function relativeLift(control: Estimate, treatment: Estimate): { estimate: number; standardError: number } {
  if (control.mean === 0 || !Number.isFinite(control.mean)) return { estimate: NaN, standardError: NaN };
  const mc2 = control.mean * control.mean;
  const variance = treatment.variance / mc2 + (treatment.mean * treatment.mean * control.variance) / (mc2 * mc2);
  return { estimate: treatment.mean / control.mean - 1, standardError: Math.sqrt(variance) };
}

/**
 * Fieller's interval for the relative lift ρ − 1, ρ = m_t/m_c: the ratios a test of
 * m_t − ρ·m_c = 0, with variance v_t + ρ²·v_c and critical value k, does not reject, i.e.
 *   (m_c² − k²v_c)·ρ² − 2·m_t·m_c·ρ + (m_t² − k²v_t) ≤ 0.
 * At ρ = 1 that test is the test of the absolute difference, so the interval and the absolute
 * p-value always agree. Unlike the delta method it stays honest on skewed, zero-inflated metrics
 * (the delta interval is pulled down with a noisy control mean). [NaN, NaN] when m_c² ≤ k²v_c:
 * the control mean is not distinguishable from 0 and no bounded interval exists.
 */
export function fiellerRelative(control: Estimate, treatment: Estimate, critical: number): [number, number] {
  const k2 = critical * critical;
  const a = control.mean * control.mean - k2 * control.variance;
  if (!(a > 0) || !Number.isFinite(treatment.mean)) return [NaN, NaN];
  const b = -2 * treatment.mean * control.mean;
  const c = treatment.mean * treatment.mean - k2 * treatment.variance;
  const root = Math.sqrt(Math.max(0, b * b - 4 * a * c));
  return [(-b - root) / (2 * a) - 1, (-b + root) / (2 * a) - 1];
}

/**
 * The critical value of the always-valid test: with τ² = q·V (q independent of V, as
 * {@link mixingVariance} makes it), Λ ≥ 1/α ⟺ z²/V ≥ (1 + 1/q)·(ln(1 + q) − 2 ln α).
 */
export function alwaysValidCritical(units: number, tuningUnits: number, alpha: number): number {
  const q = mixingVariance(1, units, tuningUnits, alpha);
  return Math.sqrt((1 + 1 / q) * (Math.log1p(q) - 2 * Math.log(alpha)));
}

/** Compare a treatment estimate against the control estimate. */
export function compareEstimates(control: Estimate, treatment: Estimate, options: CompareOptions = {}): Comparison {
  const { alpha = 0.05, direction = "higher", sequentialTuningUnits = 10_000, relativePrior, sides = "two" } = options;
  const oneSided = sides === "one";
  const improving = direction === "higher" ? 1 : -1;
  const diff = treatment.mean - control.mean;
  const variance = control.variance + treatment.variance;
  const se = Math.sqrt(variance);
  const df = welchDegreesOfFreedom(control, treatment);
  let t: number;
  let pValue: number;
  if (Number.isNaN(se) || Number.isNaN(diff)) {
    t = NaN; // fewer than two units in an arm
    pValue = NaN;
  } else if (se > 0) {
    t = diff / se;
    pValue = studentTTwoSided(t, df);
    // One-sided: P(T ≥ t) towards the improving side, half the two-sided tail or one minus it.
    if (oneSided) pValue = improving * t > 0 ? pValue / 2 : 1 - pValue / 2;
  } else {
    // No variation in either arm: any difference is certain, none is no evidence.
    t = diff === 0 ? 0 : Math.sign(diff) * Infinity;
    pValue = diff === 0 ? 1 : oneSided && improving * diff < 0 ? 1 : 0;
  }
  const critical = studentTQuantile(1 - (oneSided ? alpha : alpha / 2), df);
  const rel = relativeLift(control, treatment);

  const bayes = relativePrior
    ? normalPosterior(rel.estimate, rel.standardError, { prior: relativePrior, direction, alpha })
    : normalPosterior(diff, se, { direction, alpha });

  const units = control.n + treatment.n;
  const seqAlpha = options.sequentialAlpha ?? alpha;
  const seqAbs = alwaysValid(diff, variance, mixingVariance(variance, units, sequentialTuningUnits, seqAlpha), seqAlpha);
  const relCi = fiellerRelative(control, treatment, critical);
  const seqRelCi = fiellerRelative(control, treatment, alwaysValidCritical(units, sequentialTuningUnits, seqAlpha));

  // One-sided: only the bound on the losing side remains.
  const side = (ci: [number, number]): [number, number] => (!oneSided ? ci : improving > 0 ? [ci[0], Infinity] : [-Infinity, ci[1]]);
  const seqP = oneSided && improving * diff < 0 ? 1 : seqAbs.pValue;

  return {
    absolute: { estimate: diff, standardError: se, ci: side([diff - critical * se, diff + critical * se]) },
    relative: { estimate: rel.estimate, standardError: rel.standardError, ci: side(relCi) },
    tStatistic: t,
    degreesOfFreedom: df,
    pValue,
    chanceToBeatControl: bayes.chanceToBeatControl,
    sequential: { absoluteCi: side([seqAbs.lower, seqAbs.upper]), relativeCi: side(seqRelCi), pValue: seqP },
  };
}
