/**
 * The warnings that head an experiment's results: what a reader must know before trusting the
 * numbers, in words, health first. A sample-ratio mismatch means the assignment itself is broken,
 * so every metric is suspect; no data means nothing can be read yet; many units seen in two
 * variants dilute every comparison; too few units make every interval an approximation that may
 * not hold. Then what the numbers say that must not be missed: a guardrail significantly worse
 * means the change hurts something it must not. Last, a bandit changes the weights as it goes.
 */
import { create } from "@bufbuild/protobuf";
import { type ResultWarning, ResultWarningSchema } from "#gen/vane/experiments/v1/experiments_pb.js";

/** What the warnings are derived from. */
export interface WarningInput {
  srm: { pValue: number; mismatch: boolean } | null;
  arms: { variant: string; units: number; expectedShare: number }[];
  guardrails: { metricKey: string; variant: string; relativeLift: number; adjustedPValue: number }[];
  conflictingUnits: number;
  conflictingExposures: number;
  /** Metrics without a single tracked value in any arm. */
  noDataMetrics?: { metricKey: string; eventName: string }[];
  /** A bandit re-weights the arms (the sample-ratio check is off). */
  bandit?: boolean;
  /** Metrics and variants whose relative interval has no bounds yet (the control's mean cannot be told from 0). */
  unboundedRelative?: { metricKey: string; variant: string }[];
}

/** Share of units in two variants from which conflicts are worth a warning. */
export const CONFLICT_WARNING_SHARE = 0.01;

/**
 * Below this many units in an arm, the normal approximations behind every interval and p-value
 * may not hold (skewed metrics need more): the results say so.
 */
export const SMALL_SAMPLE_UNITS = 100;

const pct = (x: number) => `${(x * 100).toFixed(1)}%`;
const num = (x: number) => x.toLocaleString("en-US");
const p = (x: number) => (x < 0.001 ? x.toExponential(1) : x.toFixed(3));

/** Builds the warnings list (pure). */
export function resultWarnings(input: WarningInput): ResultWarning[] {
  const out: ResultWarning[] = [];
  const total = input.arms.reduce((a, v) => a + v.units, 0);
  if (input.srm?.mismatch) {
    const split = input.arms.map((a) => `${a.variant} ${num(a.units)} (${pct(a.units / total)}, expected ${pct(a.expectedShare)})`).join(", ");
    out.push(
      create(ResultWarningSchema, {
        code: "sample_ratio_mismatch",
        message:
          `SAMPLE RATIO MISMATCH — do not trust these results. Units per variant: ${split}; chi-square p = ${p(input.srm.pValue)}. ` +
          "Units are not reaching the variants in the configured proportions, so something other than the change differs between the groups. " +
          "Find the cause first (targeting or weights changed mid-experiment, exposures lost or logged for only some variants, redirects, bots).",
      }),
    );
  }
  if (total === 0) {
    out.push(
      create(ResultWarningSchema, {
        code: "no_data",
        message:
          "No data yet: no unit has been exposed to the experiment. Check that it is running and that clients report exposures " +
          "(evaluations of the flag in the experiment's environment).",
      }),
    );
  }
  if (total > 0 && input.conflictingUnits / total >= CONFLICT_WARNING_SHARE) {
    out.push(
      create(ResultWarningSchema, {
        code: "conflicting_exposures",
        message:
          `${num(input.conflictingUnits)} units (${pct(input.conflictingUnits / total)}) were exposed to more than one variant (${num(input.conflictingExposures)} conflicting exposures); ` +
          "each is analysed in its first variant, which dilutes the differences. Check that the unit key is stable and that targeting did not change while running.",
      }),
    );
  }
  if (total > 0) {
    for (const m of input.noDataMetrics ?? []) {
      out.push(
        create(ResultWarningSchema, {
          code: "no_data",
          metricKey: m.metricKey,
          message:
            `Metric "${m.metricKey}" has no data: no exposed unit has tracked "${m.eventName}" since its exposure. ` +
            "Check that the event is tracked with the same unit key as the exposures, or wait for it to happen.",
        }),
      );
    }
    const small = input.arms.filter((a) => a.units < SMALL_SAMPLE_UNITS);
    if (small.length) {
      out.push(
        create(ResultWarningSchema, {
          code: "small_sample",
          variant: small.length === 1 ? small[0].variant : "",
          message:
            `Too small a sample to trust: ${small.map((a) => `${a.variant} has ${num(a.units)} units`).join(", ")} (fewer than ${SMALL_SAMPLE_UNITS} per arm). ` +
            "Intervals and p-values rest on approximations that need more units (skewed metrics such as revenue need many more); wait before reading them.",
        }),
      );
    }
  }
  // A metric without data has no relative interval either: one warning is enough.
  const noData = new Set(total > 0 ? (input.noDataMetrics ?? []).map((m) => m.metricKey) : []);
  for (const u of (input.unboundedRelative ?? []).filter((u) => !noData.has(u.metricKey))) {
    out.push(
      create(ResultWarningSchema, {
        code: "too_little_data",
        metricKey: u.metricKey,
        variant: u.variant,
        message:
          `Metric "${u.metricKey}", variant "${u.variant}": too little data for a relative lift — the control's average cannot yet be told from zero ` +
          "(few units, or few units with any value), so no relative interval is trustworthy. Read the absolute difference, or wait for more units.",
      }),
    );
  }
  out.push(...guardrailWarnings(input.guardrails));
  if (input.bandit) {
    out.push(
      create(ResultWarningSchema, {
        code: "bandit_reweighting",
        message:
          "A bandit re-weights this experiment's traffic, so the sample-ratio check is off and each arm pools periods with different weights: " +
          "treat the lifts as indicative, and confirm a winner with a fixed-weight experiment when the decision matters.",
      }),
    );
  }
  return out;
}

/** One warning per guardrail significantly worse in a variant. */
export function guardrailWarnings(guardrails: WarningInput["guardrails"]): ResultWarning[] {
  return guardrails.map((g) => {
    const lift = Number.isFinite(g.relativeLift) ? ` (${g.relativeLift > 0 ? "+" : ""}${pct(g.relativeLift)} relative to control)` : "";
    return create(ResultWarningSchema, {
      code: "guardrail_violated",
      metricKey: g.metricKey,
      variant: g.variant,
      message: `Guardrail "${g.metricKey}" is significantly worse in variant "${g.variant}"${lift}, adjusted p = ${p(g.adjustedPValue)}. Do not ship this variant without understanding why.`,
    });
  });
}
