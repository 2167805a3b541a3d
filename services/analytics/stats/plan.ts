/**
 * Planning: the sample size per arm that detects a relative effect with a given power, or the
 * effect detectable with a given sample, for a two-arm comparison of means with equal arms
 * (normal approximation; Cohen 1988, ch. 2; the usual "n = 2σ²(z₁₋α + z₁₋β)²/δ²"):
 *   n = 2σ² (z_{1−α/k} + z_{power})² / δ²,  δ = mde · |μ|,  k = 2 two-sided, 1 one-sided.
 * The variance is the baseline's in both arms (for conversions σ² = p(1 − p)). α is per
 * comparison: with more than one treatment, correct it (e.g. α / treatments) before planning.
 */
import type { Sides } from "./compare.ts";
import { normalQuantile } from "./distributions.ts";

export interface PlanInput {
  /** Baseline mean per unit (a conversion rate for conversions). Not 0. */
  mean: number;
  /** Variance per unit; p(1 − p) for a conversion rate p. */
  variance: number;
  /** Default 0.05. */
  alpha?: number;
  /** Default 0.8. */
  power?: number;
  /** Default "two". */
  sides?: Sides;
}

function zSum(input: PlanInput): number {
  const { alpha = 0.05, power = 0.8, sides = "two" } = input;
  return normalQuantile(1 - (sides === "two" ? alpha / 2 : alpha)) + normalQuantile(power);
}

/** Units per arm (rounded up) to detect the relative effect `relativeMde`. */
export function sampleSizePerArm(input: PlanInput, relativeMde: number): number {
  const delta = relativeMde * Math.abs(input.mean);
  if (!(delta > 0) || !(input.variance > 0)) throw new RangeError("sampleSizePerArm: needs a non-zero mean, an effect above 0 and a variance above 0");
  return Math.max(2, Math.ceil((2 * input.variance * zSum(input) ** 2) / (delta * delta)));
}

/** The relative effect detectable with `unitsPerArm` units per arm. */
export function minimumDetectableEffect(input: PlanInput, unitsPerArm: number): { relative: number; absolute: number } {
  if (!(Math.abs(input.mean) > 0) || !(input.variance > 0) || !(unitsPerArm >= 2))
    throw new RangeError("minimumDetectableEffect: needs a non-zero mean, a variance above 0 and at least 2 units per arm");
  const absolute = zSum(input) * Math.sqrt((2 * input.variance) / unitsPerArm);
  return { absolute, relative: absolute / Math.abs(input.mean) };
}
