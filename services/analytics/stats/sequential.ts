/**
 * Always-valid inference with the normal-mixture sequential probability ratio test (mSPRT) of
 * Robbins (1970), as used for A/B testing by Johari, Koomen, Pekelis & Walsh ("Always valid
 * inference", 2017/2022). For an estimate θ̂ ~ N(θ, V) and a N(θ₀, τ²) mixing distribution over
 * the alternative, the mixture likelihood ratio is
 *   Λ = √(V/(V+τ²)) · exp( τ² (θ̂−θ₀)² / (2V(V+τ²)) ),
 * and rejecting when Λ ≥ 1/α controls the type I error at α however often it is checked.
 * Inverting the test gives the always-valid interval
 *   θ̂ ± √( V(V+τ²)/τ² · ( ln((V+τ²)/V) − 2 ln α ) ).
 */

/**
 * The ratio s = τ²/V at which the mixture interval is narrowest: minimising
 * (1 + 1/s)(−2 ln α + ln(1 + s)) over s gives s = −2 ln α + ln(1 + s).
 */
export function optimalMixingRatio(alpha: number): number {
  const c = -2 * Math.log(alpha);
  let s = c;
  for (let i = 0; i < 100; i++) {
    const next = c + Math.log1p(s); // a contraction: derivative 1/(1+s) < 1
    if (Math.abs(next - s) < 1e-12) return next;
    s = next;
  }
  return s;
}

/**
 * Mixing variance τ² tuned so the interval is narrowest when the experiment holds `tuningUnits`
 * units in total. The per-unit variance n·V is taken from the current data (a plug-in, as in
 * Johari et al.); τ² = s(α) · n·V / N*.
 */
export function mixingVariance(variance: number, units: number, tuningUnits: number, alpha: number): number {
  return (optimalMixingRatio(alpha) * variance * units) / tuningUnits;
}

export interface AlwaysValidResult {
  lower: number;
  upper: number;
  /** min(1, 1/Λ) at this look; a caller watching over time keeps the running minimum. */
  pValue: number;
}

/** Always-valid interval and p-value for an estimate with variance V, given τ² and α. */
export function alwaysValid(estimate: number, variance: number, tauSquared: number, alpha: number, nullValue = 0): AlwaysValidResult {
  if (!(variance > 0) || !(tauSquared > 0) || !Number.isFinite(estimate)) {
    const exact = variance === 0 && Number.isFinite(estimate);
    return { lower: exact ? estimate : NaN, upper: exact ? estimate : NaN, pValue: exact ? (estimate === nullValue ? 1 : 0) : NaN };
  }
  const total = variance + tauSquared;
  const halfWidth = Math.sqrt(((variance * total) / tauSquared) * (Math.log(total / variance) - 2 * Math.log(alpha)));
  const z = estimate - nullValue;
  const logLambda = 0.5 * Math.log(variance / total) + (tauSquared * z * z) / (2 * variance * total);
  return { lower: estimate - halfWidth, upper: estimate + halfWidth, pValue: Math.min(1, Math.exp(-logLambda)) };
}
