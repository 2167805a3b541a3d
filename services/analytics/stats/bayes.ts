/**
 * Bayesian chance to beat control.
 * - Normal model: the lift's likelihood is N(estimate, se²) (central limit theorem). With a flat
 *   prior the posterior is that same normal; with a normal prior on the relative lift the two are
 *   combined by precision weighting.
 * - Beta-Binomial model for conversions: each rate has a Beta(α₀ + successes, β₀ + failures)
 *   posterior; P(p_T > p_C) = ∫ f_T(x) F_C(x) dx by composite Simpson's rule.
 */
import { betaCdf, betaPdf, normalCdf, normalQuantile } from "./distributions.ts";

export interface NormalPrior {
  mean: number;
  standardDeviation: number;
}

export interface NormalPosterior {
  mean: number;
  standardDeviation: number;
  /** P(lift > 0) for "higher", P(lift < 0) for "lower". */
  chanceToBeatControl: number;
  /** Equal-tailed credible interval at 1 − alpha. */
  credibleInterval: [number, number];
}

/** Posterior for a lift whose likelihood is N(estimate, standardError²); flat prior when none is given. */
export function normalPosterior(
  estimate: number,
  standardError: number,
  options: { prior?: NormalPrior; direction?: "higher" | "lower"; alpha?: number } = {},
): NormalPosterior {
  const { prior, direction = "higher", alpha = 0.05 } = options;
  let mean = estimate;
  let sd = standardError;
  if (prior && Number.isFinite(prior.standardDeviation) && prior.standardDeviation > 0 && standardError > 0) {
    const precision = 1 / prior.standardDeviation ** 2 + 1 / standardError ** 2;
    mean = (prior.mean / prior.standardDeviation ** 2 + estimate / standardError ** 2) / precision;
    sd = Math.sqrt(1 / precision);
  }
  let chance: number;
  if (sd > 0) chance = normalCdf(mean / sd);
  else chance = mean > 0 ? 1 : mean < 0 ? 0 : 0.5;
  if (direction === "lower") chance = 1 - chance;
  const z = normalQuantile(1 - alpha / 2);
  return { mean, standardDeviation: sd, chanceToBeatControl: chance, credibleInterval: [mean - z * sd, mean + z * sd] };
}

export interface BetaPrior {
  alpha: number;
  beta: number;
}

export interface Conversions {
  successes: number;
  trials: number;
}

/**
 * P(p_treatment > p_control) under independent Beta posteriors, prior Beta(1, 1) (uniform) by default.
 * Prior parameters must be ≥ 1 so the densities stay bounded. Integrates over the narrower
 * posterior (±12 sd or wider until its tails hold < 1e-14, clipped to [0, 1]), where the other's cdf is smooth on the grid.
 */
export function betaChanceToBeat(control: Conversions, treatment: Conversions, prior: BetaPrior = { alpha: 1, beta: 1 }): number {
  if (!(prior.alpha >= 1 && prior.beta >= 1)) throw new RangeError("betaChanceToBeat: prior parameters must be >= 1");
  const c = { a: prior.alpha + control.successes, b: prior.beta + control.trials - control.successes };
  const t = { a: prior.alpha + treatment.successes, b: prior.beta + treatment.trials - treatment.successes };
  const sd = (p: { a: number; b: number }) => Math.sqrt((p.a * p.b) / ((p.a + p.b) ** 2 * (p.a + p.b + 1)));
  // P(T > C) = ∫ f_T F_C, or 1 − ∫ f_C F_T: integrate against the narrower density.
  if (sd(t) <= sd(c)) return integrateAgainst(t, c);
  return 1 - integrateAgainst(c, t);
}

/** ∫ f_P(x) F_Q(x) dx with P, Q Beta distributions, P the narrower. */
function integrateAgainst(p: { a: number; b: number }, q: { a: number; b: number }): number {
  const mean = p.a / (p.a + p.b);
  const sd = Math.sqrt((p.a * p.b) / ((p.a + p.b) ** 2 * (p.a + p.b + 1)));
  // Start at ±12 sd and widen until the mass left outside is negligible (skewed posteriors such as
  // Beta(1, 41) have long right tails).
  let lo = Math.max(0, mean - 12 * sd);
  let hi = Math.min(1, mean + 12 * sd);
  for (let k = 18; lo > 0 && betaCdf(lo, p.a, p.b) > 1e-14; k *= 1.5) lo = Math.max(0, mean - k * sd);
  for (let k = 18; hi < 1 && 1 - betaCdf(hi, p.a, p.b) > 1e-14; k *= 1.5) hi = Math.min(1, mean + k * sd);
  const intervals = 4000; // even
  const h = (hi - lo) / intervals;
  let sum = 0;
  for (let i = 0; i <= intervals; i++) {
    const x = lo + i * h;
    const weight = i === 0 || i === intervals ? 1 : i % 2 === 1 ? 4 : 2;
    sum += weight * betaPdf(x, p.a, p.b) * betaCdf(x, q.a, q.b);
  }
  return Math.min(1, Math.max(0, (sum * h) / 3));
}
