/**
 * Whole-metric and whole-experiment analysis: picks the estimator for the metric kind, applies
 * CUPED when every variant has a covariate, compares each treatment with control (variant 0),
 * corrects p-values across all metric × treatment comparisons and checks the sample ratio.
 */
import { betaChanceToBeat, type BetaPrior } from "./bayes.ts";
import { compareEstimates, type Comparison, type CompareOptions, type Direction } from "./compare.ts";
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
export type MetricInput =
  | { key: string; kind: MeanMetricKind; direction?: Direction; family?: string; variants: readonly MeanSums[] }
  | { key: string; kind: "ratio"; direction?: Direction; family?: string; variants: readonly RatioSums[] }
  | {
      key: string;
      kind: "estimate";
      direction?: Direction;
      family?: string;
      variants: readonly Estimate[];
      cuped?: { theta: number; unadjusted: readonly Estimate[] };
    };

export interface AnalysisOptions extends CompareOptions {
  /** Use CUPED when every variant carries covariate sums. Default true. */
  cuped?: boolean;
  /** Prior for conversions' Beta-Binomial chance to beat control. Default Beta(1, 1). */
  betaPrior?: BetaPrior;
  /** Across all metric × treatment comparisons. Default "benjamini-hochberg". */
  correction?: Correction;
  /** SRM p-value threshold. Default 0.001. */
  srmThreshold?: number;
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
  /** From adjustedPValue < alpha and direction. */
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
}

function verdictOf(pValue: number, estimate: number, alpha: number, direction: Direction): Verdict {
  if (!(pValue < alpha) || estimate === 0 || Number.isNaN(estimate)) return "inconclusive";
  return estimate > 0 === (direction === "higher") ? "better" : "worse";
}

/** Analyze one metric (no correction across metrics: use analyzeExperiment for that). */
export function analyzeMetric(input: MetricInput, options: AnalysisOptions = {}): MetricResult {
  const { alpha = 0.05, cuped = true, betaPrior } = options;
  const direction = input.direction ?? options.direction ?? "higher";
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
    const comparison = compareEstimates(control, treatment, { ...options, direction });
    if (input.kind === "conversion" && theta === null) {
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
      verdict: verdictOf(comparison.pValue, comparison.absolute.estimate, alpha, direction),
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
  };
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
  const { alpha = 0.05, correction = "benjamini-hochberg", srmThreshold = 0.001 } = options;
  const metrics = input.metrics.map((m) => analyzeMetric(m, options));
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
    });
  }
  for (const m of metrics) {
    for (const v of m.variants) v.verdict = verdictOf(v.adjustedPValue, v.absolute.estimate, alpha, m.direction);
  }
  let srm: SrmResult | null = null;
  if (input.units) {
    const weights = input.weights ?? input.units.map(() => 1);
    srm = sampleRatioMismatch(input.units, weights, srmThreshold);
  }
  return { srm, correction, metrics };
}
