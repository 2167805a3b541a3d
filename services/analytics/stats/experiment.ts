/**
 * Whole-metric and whole-experiment analysis: picks the estimator for the metric kind, applies
 * CUPED when every variant has a covariate, compares each treatment with control (variant 0),
 * corrects p-values across all metric × treatment comparisons and checks the sample ratio.
 */
import { type BayesianLift, bayesianLift, bayesianVerdict, betaChanceToBeat, type BetaPrior, type NormalPrior } from "./bayes.ts";
import { compareEstimates, type Comparison, type CompareOptions, type Direction, type Sides } from "./compare.ts";
import { cupedEstimates, meanEstimate, ratioEstimate, type Estimate, type MeanSums, type RatioSums } from "./estimates.ts";
import { adjustPValues, type Correction } from "./multiple-testing.ts";
import { sampleRatioMismatch, type SrmResult } from "./srm.ts";

/** conversion: per-unit 0/1; count, sum, mean: per-unit totals compared as means per unit. */
export type MeanMetricKind = "conversion" | "count" | "sum" | "mean";
/** estimate: per-variant estimates computed elsewhere (quantiles, CUPED-adjusted ratios: metric-types/). */
export type MetricKind = MeanMetricKind | "ratio" | "estimate";

/** One metric's sums per variant, control first. */
/**
 * `family`: comparisons are corrected within their family only (default "decision"). Guardrails
 * are a family of their own, so adding decision metrics never makes harm harder to flag.
 */
/** `sides` overrides the options' (guardrails stay two-sided to catch harm). */
export type MetricInput =
  | { key: string; kind: MeanMetricKind; direction?: Direction; family?: string; sides?: Sides; variants: readonly MeanSums[] }
  | { key: string; kind: "ratio"; direction?: Direction; family?: string; sides?: Sides; variants: readonly RatioSums[] }
  | {
      key: string;
      kind: "estimate";
      direction?: Direction;
      family?: string;
      sides?: Sides;
      variants: readonly Estimate[];
      cuped?: { theta: number; unadjusted: readonly Estimate[] };
    };

export type Engine = "frequentist" | "bayesian";
export type Scale = "relative" | "absolute";

export interface AnalysisOptions extends CompareOptions {
  /** Use CUPED when every variant carries covariate sums. Default true. */
  cuped?: boolean;
  /** Prior for conversions' Beta-Binomial chance to beat control. Default Beta(1, 1). */
  betaPrior?: BetaPrior;
  /** Across all metric × treatment comparisons. Default "benjamini-hochberg". */
  correction?: Correction;
  /** SRM p-value threshold. Default 0.001. */
  srmThreshold?: number;
  /** Default "frequentist". "bayesian" adds {@link VariantResult.bayes} and decides by {@link bayesianVerdict}. */
  engine?: Engine;
  /** The scale the decision's lift and interval are on. Default "relative". */
  scale?: Scale;
  /** Decide on the sequential (always-valid) p-value and interval. Default false. */
  sequential?: boolean;
  /** Bayesian: normal priors on the relative lift by metric key; flat when absent. */
  priors?: Readonly<Record<string, NormalPrior>>;
  /** Bayesian decision rule thresholds. Defaults 0.95 and 0.0025. */
  chanceToWinThreshold?: number;
  riskThreshold?: number;
}

/** The one lift, interval and p-value a decision follows, on one scale. */
export interface Decision {
  lift: number;
  interval: [number, number];
  /** NaN for the Bayesian engine. */
  pValue: number;
  verdict: Verdict;
}

/** What a decision is made from (the sequential numbers may be carried across looks by the caller). */
export interface DecisionInput {
  direction: Direction;
  absolute: { estimate: number; ci: [number, number]; sequentialCi: [number, number] };
  relative: { estimate: number; ci: [number, number]; sequentialCi: [number, number] };
  /** Corrected fixed-horizon and sequential p-values. */
  adjustedPValue: number;
  adjustedSequentialPValue: number;
  bayes: BayesianLift | null;
}

/**
 * Picks the scale's lift and the engine's interval and decides: frequentist, the corrected
 * (fixed or sequential) p-value below alpha, which without a correction is exactly "the interval
 * excludes 0" (Fieller's relative interval inverts the same test as the absolute one); Bayesian,
 * {@link bayesianVerdict}.
 */
export function decide(d: DecisionInput, options: AnalysisOptions = {}): Decision {
  const { alpha = 0.05, scale = "relative", sequential = false, engine = "frequentist" } = options;
  const onScale = scale === "relative" ? d.relative : d.absolute;
  if (engine === "bayesian" && d.bayes) {
    const verdict = bayesianVerdict(d.bayes, { chanceToWin: options.chanceToWinThreshold ?? 0.95, risk: options.riskThreshold ?? 0.0025 });
    return { lift: onScale.estimate, interval: d.bayes.credibleInterval, pValue: NaN, verdict };
  }
  const pValue = sequential ? d.adjustedSequentialPValue : d.adjustedPValue;
  return {
    lift: onScale.estimate,
    interval: sequential ? onScale.sequentialCi : onScale.ci,
    pValue,
    verdict: verdictOf(pValue, d.absolute.estimate, alpha, d.direction),
  };
}

export type Verdict = "better" | "worse" | "inconclusive";

export interface VariantResult extends Comparison {
  /** Index into the input variants (1 = first treatment). */
  variant: number;
  n: number;
  /** The variant's estimate (CUPED-adjusted when applied). */
  mean: number;
  standardError: number;
  /** p-value after the correction across comparisons; equals pValue from analyzeMetric alone. */
  adjustedPValue: number;
  /** The sequential p-value after the same correction. */
  adjustedSequentialPValue: number;
  /** Present for the Bayesian engine. */
  bayes: BayesianLift | null;
  /** The decision (its verdict is also `verdict`). */
  decision: Decision;
  /** The decision's verdict: by default from adjustedPValue < alpha and direction. */
  verdict: Verdict;
  /** Present when CUPED was applied. */
  cuped: {
    unadjustedMean: number;
    unadjustedStandardError: number;
    /** 1 − Var(adjusted mean)/Var(plain mean) for this variant. */
    varianceReduction: number;
    /** 1 − Var(adjusted lift)/Var(plain lift): how much narrower (squared) the lift's interval got. */
    liftVarianceReduction: number;
  } | null;
}

export interface MetricResult {
  key: string;
  kind: MetricKind;
  direction: Direction;
  control: { n: number; mean: number; standardError: number };
  /** Pooled θ, when CUPED was applied. */
  cuped: { theta: number } | null;
  variants: VariantResult[];
  /** The estimates compared, control first (CUPED-adjusted when applied). */
  estimates: Estimate[];
  /** The sides its comparisons used. */
  sides: Sides;
}

function withDecision(
  c: Comparison,
  adjustedPValue: number,
  adjustedSequentialPValue: number,
  bayes: BayesianLift | null,
  direction: Direction,
  options: AnalysisOptions,
): { decision: Decision; verdict: Verdict } {
  const decision = decide(
    {
      direction,
      absolute: { estimate: c.absolute.estimate, ci: c.absolute.ci, sequentialCi: c.sequential.absoluteCi },
      relative: { estimate: c.relative.estimate, ci: c.relative.ci, sequentialCi: c.sequential.relativeCi },
      adjustedPValue,
      adjustedSequentialPValue,
      bayes,
    },
    options,
  );
  return { decision, verdict: decision.verdict };
}

function verdictOf(pValue: number, estimate: number, alpha: number, direction: Direction): Verdict {
  if (!(pValue < alpha) || estimate === 0 || Number.isNaN(estimate)) return "inconclusive";
  return estimate > 0 === (direction === "higher") ? "better" : "worse";
}

/** Analyze one metric (no correction across metrics: use analyzeExperiment for that). */
export function analyzeMetric(input: MetricInput, options: AnalysisOptions = {}): MetricResult {
  const { alpha = 0.05, cuped = true, betaPrior, engine = "frequentist" } = options;
  const direction = input.direction ?? options.direction ?? "higher";
  const sides = input.sides ?? options.sides ?? "two";
  if (input.variants.length < 2) throw new RangeError(`metric ${input.key}: needs control and at least one treatment`);

  let estimates: Estimate[];
  let unadjusted: Estimate[] | null = null;
  let reductions: number[] | null = null;
  let theta: number | null = null;
  if (input.kind === "ratio") {
    estimates = input.variants.map(ratioEstimate);
  } else if (input.kind === "estimate") {
    estimates = [...input.variants];
    if (input.cuped) {
      unadjusted = [...input.cuped.unadjusted];
      reductions = estimates.map((e, i) => 1 - e.variance / unadjusted![i].variance);
      theta = input.cuped.theta;
    }
  } else {
    const sums = input.variants;
    if (cuped && sums.every((v) => v.covariate)) {
      const c = cupedEstimates(sums);
      estimates = c.adjusted;
      unadjusted = c.unadjusted;
      reductions = c.varianceReduction;
      theta = c.theta;
    } else {
      estimates = sums.map(meanEstimate);
    }
  }

  const control = estimates[0];
  const variants = estimates.slice(1).map((treatment, j): VariantResult => {
    const i = j + 1;
    const comparison = compareEstimates(control, treatment, { ...options, direction, sides });
    const bayes =
      engine === "bayesian" ? bayesianLift(control, treatment, { scale: options.scale, prior: options.priors?.[input.key], direction, alpha }) : null;
    if (bayes) {
      comparison.chanceToBeatControl = bayes.chanceToWin;
    } else if (input.kind === "conversion" && theta === null) {
      // Beta-Binomial posterior on the rates; Σy is the number of converted units.
      const chance = betaChanceToBeat(
        { successes: input.variants[0].sum, trials: input.variants[0].n },
        { successes: input.variants[i].sum, trials: input.variants[i].n },
        betaPrior,
      );
      comparison.chanceToBeatControl = direction === "higher" ? chance : 1 - chance;
    }
    return {
      ...comparison,
      variant: i,
      n: treatment.n,
      mean: treatment.mean,
      standardError: Math.sqrt(treatment.variance),
      adjustedPValue: comparison.pValue,
      adjustedSequentialPValue: comparison.sequential.pValue,
      bayes,
      ...withDecision(comparison, comparison.pValue, comparison.sequential.pValue, bayes, direction, options),
      cuped:
        unadjusted && reductions
          ? {
              unadjustedMean: unadjusted[i].mean,
              unadjustedStandardError: Math.sqrt(unadjusted[i].variance),
              varianceReduction: reductions[i],
              liftVarianceReduction: 1 - (control.variance + treatment.variance) / (unadjusted[0].variance + unadjusted[i].variance),
            }
          : null,
    };
  });

  return {
    key: input.key,
    kind: input.kind,
    direction,
    control: { n: control.n, mean: control.mean, standardError: Math.sqrt(control.variance) },
    cuped: theta === null ? null : { theta },
    variants,
    estimates,
    sides,
  };
}

/**
 * The sequential p-value after the correction, for decisions that are carried over looks: Holm's
 * and Benjamini–Hochberg's levels depend on the other comparisons' current p-values, so they
 * cannot be carried; any correction becomes Bonferroni's (the level split evenly over the family,
 * valid under any dependence), and the sequential intervals are computed at alpha / family size.
 */
export function sequentialAdjusted(pValue: number, familySize: number, correction: Correction): number {
  return correction === "none" ? pValue : Math.min(1, pValue * familySize);
}

export interface ExperimentInput {
  metrics: readonly MetricInput[];
  /** Units assigned per variant (control first), for the SRM check. */
  units?: readonly number[];
  /** Configured traffic weights per variant; equal when absent. */
  weights?: readonly number[];
}

export interface ExperimentResult {
  /** Null when `units` was not given. When `srm.mismatch` is true, do not trust the metrics. */
  srm: SrmResult | null;
  correction: Correction;
  metrics: MetricResult[];
}

/** Analyze every metric, correct p-values across the metric × treatment pairs of each family, check SRM. */
export function analyzeExperiment(input: ExperimentInput, options: AnalysisOptions = {}): ExperimentResult {
  const { correction = "benjamini-hochberg", srmThreshold = 0.001 } = options;
  const { alpha = 0.05 } = options;
  const familySize = new Map<string, number>();
  for (const m of input.metrics) familySize.set(m.family ?? "decision", (familySize.get(m.family ?? "decision") ?? 0) + m.variants.length - 1);
  // Sequential decisions split the level over each family (see sequentialAdjusted).
  const metrics = input.metrics.map((m) =>
    analyzeMetric(m, options.sequential && correction !== "none" ? { ...options, sequentialAlpha: alpha / familySize.get(m.family ?? "decision")! } : options),
  );
  const families = new Map<string, MetricResult["variants"][number][]>();
  input.metrics.forEach((m, i) => {
    const family = m.family ?? "decision";
    families.set(family, [...(families.get(family) ?? []), ...metrics[i].variants]);
  });
  for (const flat of families.values()) {
    const adjusted = adjustPValues(
      flat.map((v) => v.pValue),
      correction,
    );
    flat.forEach((v, i) => {
      v.adjustedPValue = adjusted[i];
      v.adjustedSequentialPValue = sequentialAdjusted(v.sequential.pValue, flat.length, correction);
    });
  }
  for (const m of metrics) {
    for (const v of m.variants) {
      // The interval at the level the correction tested this comparison at, α·p/p_adj: it
      // excludes 0 exactly when the adjusted p-value is below α, so interval and decision agree.
      let c: Comparison = v;
      if (v.adjustedPValue > v.pValue && v.pValue > 0)
        c = compareEstimates(m.estimates[0], m.estimates[v.variant], {
          ...options,
          direction: m.direction,
          sides: m.sides,
          alpha: (alpha * v.pValue) / v.adjustedPValue,
        });
      Object.assign(
        v,
        withDecision(
          { ...v, absolute: { ...v.absolute, ci: c.absolute.ci }, relative: { ...v.relative, ci: c.relative.ci } },
          v.adjustedPValue,
          v.adjustedSequentialPValue,
          v.bayes,
          m.direction,
          options,
        ),
      );
    }
  }
  let srm: SrmResult | null = null;
  if (input.units) {
    const weights = input.weights ?? input.units.map(() => 1);
    srm = sampleRatioMismatch(input.units, weights, srmThreshold);
  }
  return { srm, correction, metrics };
}
