/**
 * Bayesian chance to beat control.
 * - Normal model: the lift's likelihood is N(estimate, se²) (central limit theorem). With a flat
 *   prior the posterior is that same normal; with a normal prior on the relative lift the two are
 *   combined by precision weighting.
 * - Beta-Binomial model for conversions: each rate has a Beta(α₀ + successes, β₀ + failures)
 *   posterior; P(p_T > p_C) = ∫ f_T(x) F_C(x) dx by composite Simpson's rule.
 */
import { betaCdf, betaPdf, normalCdf, normalPdf, normalQuantile } from "./distributions.ts";

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

/** What a Bayesian engine reports for one treatment against control. */
export interface BayesianLift {
  /** Equal-tailed credible interval of the lift at 1 − alpha, on the requested scale. */
  credibleInterval: [number, number];
  /** Posterior probability that the treatment is better (per direction). */
  chanceToWin: number;
  /** E[loss] if the treatment is shipped, as a share of the control's mean. */
  risk: number;
  /** E[loss] if the control is kept, as a share of the control's mean. */
  controlRisk: number;
}

const NO_BAYES: BayesianLift = { credibleInterval: [NaN, NaN], chanceToWin: NaN, risk: NaN, controlRisk: NaN };

/**
 * Bayesian comparison with a normal likelihood and a flat or normal prior on the relative lift.
 * - Relative scale: the posterior is on L = ln(m_t/m_c), likelihood N(ln m_t − ln m_c,
 *   v_t/m_t² + v_c/m_c²) (delta method per arm; symmetric in the arms, so a noisy control does
 *   not pull it one way). A prior N(μ, σ²) on the relative lift becomes N(ln(1+μ), (σ/(1+μ))²).
 *   Lift e^L − 1: interval e^(m ± z s) − 1; risk of shipping (higher is better)
 *   E[(1 − e^L)⁺] = Φ(−m/s) − e^(m+s²/2) Φ(−m/s − s); of keeping control
 *   E[(e^L − 1)⁺] = e^(m+s²/2) Φ(m/s + s) − Φ(m/s). Needs both means above 0 (else NaN).
 * - Absolute scale: the posterior is on δ = m_t − m_c, likelihood N(δ̂, v_t + v_c), a relative
 *   prior scaled by |m_c|; E[(−δ)⁺] = s φ(m/s) − m Φ(−m/s), E[δ⁺] = s φ(m/s) + m Φ(m/s), both
 *   divided by |m_c|.
 * For lower-is-better metrics the roles of gain and loss swap.
 */
export function bayesianLift(
  control: { mean: number; variance: number },
  treatment: { mean: number; variance: number },
  options: { scale?: "relative" | "absolute"; prior?: NormalPrior; direction?: "higher" | "lower"; alpha?: number } = {},
): BayesianLift {
  const { scale = "relative", prior, direction = "higher", alpha = 0.05 } = options;
  const z = normalQuantile(1 - alpha / 2);
  const better = direction === "higher" ? 1 : -1;
  const combine = (estimate: number, variance: number, p: NormalPrior | undefined) => {
    if (!p) return { m: estimate, s: Math.sqrt(variance) };
    const precision = 1 / p.standardDeviation ** 2 + 1 / variance;
    return { m: (p.mean / p.standardDeviation ** 2 + estimate / variance) / precision, s: Math.sqrt(1 / precision) };
  };
  if (scale === "relative") {
    const { mean: mc, variance: vc } = control;
    const { mean: mt, variance: vt } = treatment;
    if (!(mc > 0 && mt > 0)) return NO_BAYES;
    const variance = vt / (mt * mt) + vc / (mc * mc);
    if (!(variance > 0)) return NO_BAYES;
    const logPrior = prior && prior.mean > -1 ? { mean: Math.log1p(prior.mean), standardDeviation: prior.standardDeviation / (1 + prior.mean) } : undefined;
    const { m, s } = combine(Math.log(mt / mc), variance, logPrior);
    const up = normalCdf(m / s); // P(L > 0)
    const gain = Math.exp(m + (s * s) / 2) * normalCdf(m / s + s) - up; // E[(e^L − 1)⁺]
    const loss = normalCdf(-m / s) - Math.exp(m + (s * s) / 2) * normalCdf(-m / s - s); // E[(1 − e^L)⁺]
    return {
      credibleInterval: [Math.expm1(m - z * s), Math.expm1(m + z * s)],
      chanceToWin: better > 0 ? up : 1 - up,
      risk: Math.max(0, better > 0 ? loss : gain),
      controlRisk: Math.max(0, better > 0 ? gain : loss),
    };
  }
  const scaleBy = Math.abs(control.mean);
  const variance = control.variance + treatment.variance;
  if (!(variance > 0) || !(scaleBy > 0)) return NO_BAYES;
  const absPrior = prior && { mean: prior.mean * scaleBy, standardDeviation: prior.standardDeviation * scaleBy };
  const { m, s } = combine(treatment.mean - control.mean, variance, absPrior);
  const up = normalCdf(m / s);
  const gain = s * normalPdf(m / s) + m * up; // E[δ⁺]
  const loss = s * normalPdf(m / s) - m * normalCdf(-m / s); // E[(−δ)⁺]
  return {
    credibleInterval: [m - z * s, m + z * s],
    chanceToWin: better > 0 ? up : 1 - up,
    risk: Math.max(0, (better > 0 ? loss : gain) / scaleBy),
    controlRisk: Math.max(0, (better > 0 ? gain : loss) / scaleBy),
  };
}

/**
 * The documented Bayesian decision rule: "better" when the chance to win is at least
 * `chanceToWin` and the risk of shipping at most `risk`; "worse" in the mirror image (chance at
 * most 1 − chanceToWin, risk of keeping control at most `risk`); else inconclusive.
 */
export function bayesianVerdict(b: BayesianLift, thresholds: { chanceToWin: number; risk: number }): "better" | "worse" | "inconclusive" {
  if (b.chanceToWin >= thresholds.chanceToWin && b.risk <= thresholds.risk) return "better";
  if (b.chanceToWin <= 1 - thresholds.chanceToWin && b.controlRisk <= thresholds.risk) return "worse";
  return "inconclusive";
}
