/**
 * Sample-ratio-mismatch check: Pearson's chi-square goodness of fit of the observed units per
 * variant against the configured weights, k − 1 degrees of freedom. A p-value below the threshold
 * (default 0.001) means the assignment or the logging is broken and results must not be trusted.
 */
import { chiSquareSf } from "./distributions.ts";

export interface SrmResult {
  chiSquare: number;
  degreesOfFreedom: number;
  pValue: number;
  /** Expected units per variant under the weights. */
  expected: number[];
  /** True when pValue < threshold. */
  mismatch: boolean;
}

/** `units[i]` observed units of variant i; `weights[i]` its configured weight (any positive scale). */
export function sampleRatioMismatch(units: readonly number[], weights: readonly number[], threshold = 0.001): SrmResult {
  if (units.length !== weights.length) throw new RangeError("sampleRatioMismatch: units and weights differ in length");
  if (weights.some((w) => !(w >= 0)) || !weights.some((w) => w > 0)) throw new RangeError("sampleRatioMismatch: weights must be >= 0, one > 0");
  const total = units.reduce((a, b) => a + b, 0);
  const weightSum = weights.reduce((a, b) => a + b, 0);
  const expected = weights.map((w) => (total * w) / weightSum);
  let chiSquare = 0;
  let categories = 0;
  let impossible = false;
  for (let i = 0; i < units.length; i++) {
    if (expected[i] === 0) {
      // A variant with weight 0 must receive no one.
      if (units[i] > 0) impossible = true;
      continue;
    }
    categories++;
    chiSquare += (units[i] - expected[i]) ** 2 / expected[i];
  }
  const degreesOfFreedom = Math.max(categories - 1, 0);
  let pValue: number;
  if (impossible) pValue = 0;
  else if (total === 0 || degreesOfFreedom === 0) pValue = 1;
  else pValue = chiSquareSf(chiSquare, degreesOfFreedom);
  return { chiSquare: impossible ? Infinity : chiSquare, degreesOfFreedom, pValue, expected, mismatch: pValue < threshold };
}
