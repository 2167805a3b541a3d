/**
 * Results of an experiment from the pipeline's per-day sums: the sums up to a day (or all of
 * them) go through the stats library's analyzeExperiment, and come back as the contract's
 * Results. Cumulative per-day results are exact because the pipeline stores per-day increments.
 */
import { create } from "@bufbuild/protobuf";
import { timestampFromDate } from "@bufbuild/protobuf/wkt";
import { sql } from "kysely";
import {
  Direction,
  type Interval,
  IntervalSchema,
  LiftScale,
  type Results,
  ResultsSchema,
  StatisticsEngine,
  TestSides,
  type TimelinePoint,
  TimelinePointSchema,
} from "#gen/vane/experiments/v1/experiments_pb.js";
import { analysisOptions, loadSettings } from "./experiment-settings.ts";
import { computedAtResultsTime } from "./metric-types/definition.ts";
import { loadTypedMetric, type TypedMetric } from "./metric-types/load.ts";
import { typedWarnings } from "./metric-types/warnings.ts";
import { guardrailWarnings, resultWarnings } from "./result-warnings.ts";
import { type AnalysisOptions, analyzeExperiment, decide, type MetricInput, sequentialAdjusted } from "./stats/index.ts";
import type { ExperimentRow, MetricRow, VariantSums } from "./schema.ts";
import type { Db } from "./store.ts";

/** Per-variant sums of one metric (columns of variant_daily, summed). */
export type { VariantSums };

/** Everything results are computed from. */
export interface ResultsInput {
  experiment: ExperimentRow;
  metrics: Map<string, MetricRow>;
  /** metric id → variant → sums. */
  sums: Map<string, Map<string, VariantSums>>;
  /** variant → assigned units. */
  units: Map<string, number>;
  conflictingUnits: number;
  conflictingExposures: number;
  /** metric id → the metric computed at results time (metric-types/), instead of `sums`. */
  typed?: Map<string, TypedMetric>;
}

const ZERO: VariantSums = {
  units: 0,
  sum: 0,
  sum_squares: 0,
  count_sum: 0,
  count_squares: 0,
  sum_count_product: 0,
  cov_sum: 0,
  cov_squares: 0,
  cov_product: 0,
};

/** The experiment's arms, control first. */
export function armsOf(x: ExperimentRow): string[] {
  const all = x.variants.map((v) => v.variant);
  return [x.control_variant, ...all.filter((v) => v !== x.control_variant)];
}

/** Analyses the sums (pure), with the experiment's settings; `confidenceLevel` 0 means the settings' level. */
export function computeResults(input: ResultsInput, confidenceLevel: number, now: Date): Results {
  const x = input.experiment;
  const options = analysisOptions(loadSettings(x.settings), confidenceLevel);
  const arms = armsOf(x);
  const roles = [
    ...x.metric_keys.primary.map((k) => ({ key: k, role: "primary" })),
    ...x.metric_keys.secondary.map((k) => ({ key: k, role: "secondary" })),
    ...x.metric_keys.guardrail.map((k) => ({ key: k, role: "guardrail" })),
  ].filter((r) => {
    const m = input.metrics.get(x.metric_ids[r.key]);
    // A results-time metric is left out of a look it was not computed for (GetResults' daily looks).
    return m && (!computedAtResultsTime(m) || input.typed?.has(m.id));
  });
  const inputs: MetricInput[] = roles.map(({ key, role }) => {
    const m = input.metrics.get(x.metric_ids[key])!;
    // Guardrails are corrected among themselves (see stats/experiment.ts).
    const family = role === "guardrail" ? "guardrail" : "decision";
    // A guardrail looks for harm: always two-sided.
    const sides = role === "guardrail" ? "two" : options.sides;
    const sums = arms.map((v) => input.sums.get(m.id)?.get(v) ?? ZERO);
    const direction = m.direction === "decrease" ? "lower" : "higher";
    const typed = input.typed?.get(m.id);
    if (typed) return { ...typed.input, key, direction, family, sides };
    if (m.kind === "mean") {
      return {
        key,
        kind: "ratio",
        direction,
        family,
        sides,
        variants: sums.map((s) => ({
          n: s.units,
          numerator: { sum: s.sum, sumSquares: s.sum_squares },
          denominator: { sum: s.count_sum, sumSquares: s.count_squares },
          sumProduct: s.sum_count_product,
        })),
      } satisfies MetricInput;
    }
    // CUPED only when the pre-period covariate varies within variants (else θ is undefined).
    const hasCovariate = sums.some((s) => s.units > 1 && s.cov_squares - (s.cov_sum * s.cov_sum) / s.units > 1e-9 * Math.max(1, s.cov_squares));
    return {
      key,
      kind: m.kind as "conversion" | "count" | "sum",
      direction,
      family,
      sides,
      variants: sums.map((s) => ({
        n: s.units,
        sum: s.sum,
        sumSquares: s.sum_squares,
        ...(hasCovariate ? { covariate: { sum: s.cov_sum, sumSquares: s.cov_squares, sumProduct: s.cov_product } } : {}),
      })),
    } satisfies MetricInput;
  });
  const level = 1 - options.alpha;
  const weightOf = new Map(x.variants.map((v) => [v.variant, v.weight]));
  const order = x.variants.map((v) => v.variant);
  // A bandit moves the weights over time: the configured ones are no expectation to test against.
  const bandit = x.bandit?.enabled ?? false;
  const analysis = analyzeExperiment(
    { metrics: inputs, units: bandit ? undefined : order.map((v) => input.units.get(v) ?? 0), weights: order.map((v) => weightOf.get(v) ?? 0) },
    options,
  );
  const totalWeight = order.reduce((a, v) => a + (weightOf.get(v) ?? 0), 0);
  const observed = order.map((v) => input.units.get(v) ?? 0);
  const settings = loadSettings(x.settings);
  const planned = Number(settings.plannedUnitsPerArm);
  const warnings = resultWarnings({
    srm: analysis.srm && { pValue: analysis.srm.pValue, mismatch: analysis.srm.mismatch },
    arms: order.map((v, i) => ({ variant: v, units: observed[i], expectedShare: (weightOf.get(v) ?? 0) / totalWeight })),
    noDataMetrics: analysis.metrics.flatMap((m, i) => {
      const sums = arms.map((v) => input.sums.get(x.metric_ids[m.key])?.get(v));
      return sums.some((s) => s && (s.sum !== 0 || s.count_sum !== 0))
        ? []
        : [{ metricKey: m.key, eventName: input.metrics.get(x.metric_ids[roles[i].key])?.event_name ?? "" }];
    }),
    guardrails: analysis.metrics.flatMap((m, i) =>
      roles[i].role === "guardrail"
        ? m.variants
            .filter((v) => v.verdict === "worse")
            .map((v) => ({ metricKey: m.key, variant: arms[v.variant], relativeLift: v.relative.estimate, adjustedPValue: v.adjustedPValue }))
        : [],
    ),
    conflictingUnits: input.conflictingUnits,
    conflictingExposures: input.conflictingExposures,
    bandit,
    unboundedRelative: analysis.metrics.flatMap((m) =>
      m.variants.flatMap((v) => (v.relative.ci.some(Number.isNaN) ? [{ metricKey: m.key, variant: arms[v.variant] }] : [])),
    ),
  });
  return create(ResultsSchema, {
    experimentId: x.id,
    computeTime: timestampFromDate(now),
    confidenceLevel: level,
    correction: analysis.correction,
    conflictingExposures: BigInt(input.conflictingExposures),
    conflictingUnits: BigInt(input.conflictingUnits),
    warnings: [...warnings, ...typedWarnings(roles.map((r) => ({ key: r.key, typed: input.typed?.get(x.metric_ids[r.key]) })))],
    scale: options.scale === "absolute" ? LiftScale.ABSOLUTE : LiftScale.RELATIVE,
    engine: options.engine === "bayesian" ? StatisticsEngine.BAYESIAN : StatisticsEngine.FREQUENTIST,
    sequential: options.engine !== "bayesian" && (options.sequential ?? false),
    sides: options.sides === "one" ? TestSides.ONE_SIDED : TestSides.TWO_SIDED,
    progress:
      planned > 0
        ? { plannedUnitsPerArm: BigInt(planned), smallestArmUnits: BigInt(Math.min(...observed)), fraction: Math.min(...observed) / planned }
        : undefined,
    sampleRatio: {
      observedUnits: order.map((v) => BigInt(input.units.get(v) ?? 0)),
      expectedShares: order.map((v) => (weightOf.get(v) ?? 0) / totalWeight),
      pValue: analysis.srm?.pValue ?? 1,
      mismatch: analysis.srm?.mismatch ?? false,
    },
    metrics: analysis.metrics.map((m, i) => ({
      metricKey: m.key,
      role: roles[i].role,
      direction: m.direction === "lower" ? Direction.DECREASE : Direction.INCREASE,
      variants: [
        { variant: arms[0], units: BigInt(m.control.n), mean: m.control.mean, standardError: m.control.standardError, cupedApplied: m.cuped !== null },
        ...m.variants.map((v) => ({
          variant: arms[v.variant],
          units: BigInt(v.n),
          mean: v.mean,
          standardError: v.standardError,
          absoluteLift: v.absolute.estimate,
          absoluteLiftInterval: { lower: v.absolute.ci[0], upper: v.absolute.ci[1] },
          relativeLift: v.relative.estimate,
          relativeLiftInterval: { lower: v.relative.ci[0], upper: v.relative.ci[1] },
          pValue: v.pValue,
          adjustedPValue: v.adjustedPValue,
          chanceToBeatControl: v.chanceToBeatControl,
          sequentialInterval: { lower: v.sequential.absoluteCi[0], upper: v.sequential.absoluteCi[1] },
          relativeSequentialInterval: { lower: v.sequential.relativeCi[0], upper: v.sequential.relativeCi[1] },
          sequentialPValue: v.sequential.pValue,
          guardrailViolated: roles[i].role === "guardrail" && v.verdict === "worse",
          cupedApplied: v.cuped !== null,
          cupedVarianceReduction: v.cuped?.liftVarianceReduction ?? 0,
          lift: v.decision.lift,
          liftInterval: { lower: v.decision.interval[0], upper: v.decision.interval[1] },
          decisionPValue: v.decision.pValue,
          significant: v.decision.verdict !== "inconclusive",
          risk: v.bayes?.risk ?? NaN,
          controlRisk: v.bayes?.controlRisk ?? NaN,
          credibleInterval: v.bayes ? { lower: v.bayes.credibleInterval[0], upper: v.bayes.credibleInterval[1] } : undefined,
        })),
      ],
    })),
  });
}

const SUM_COLUMNS = ["units", "sum", "sum_squares", "count_sum", "count_squares", "sum_count_product", "cov_sum", "cov_squares", "cov_product"] as const;

/**
 * Loads the per-day rows of an experiment: per-day sums, exposures, and the metrics — in one
 * snapshot, so a batch the pipeline commits meanwhile is in all of them or in none (the sample
 * ratio and the metrics' units must count the same units).
 */
function loadDaily(db: Db, x: ExperimentRow, now: Date | null) {
  return db
    .transaction()
    .setIsolationLevel("repeatable read")
    .setAccessMode("read only")
    .execute((trx) => loadDailyIn(trx, x, now));
}

/**
 * With `now` (GetResults), results-time metrics are computed as of now only: each costs a query
 * per look, so their always-valid numbers are not carried over the daily looks. Without (the
 * timeline), as of the end of each day.
 */
async function loadDailyIn(db: Db, x: ExperimentRow, now: Date | null) {
  const metricIds = Object.values(x.metric_ids);
  const [metricRows, daily, exposures] = await Promise.all([
    metricIds.length ? db.selectFrom("metrics").selectAll().where("id", "in", metricIds).execute() : Promise.resolve([]),
    db
      .selectFrom("variant_daily")
      .select(["metric_id", "variant", sql<string>`day::text`.as("day"), ...SUM_COLUMNS])
      .where("experiment_id", "=", x.id)
      .orderBy("day")
      .execute(),
    db
      .selectFrom("exposure_daily")
      .select(["variant", sql<string>`day::text`.as("day"), "units", "conflicting_units", "conflicting_exposures"])
      .where("experiment_id", "=", x.id)
      .orderBy("day")
      .execute(),
  ]);
  // Metrics computed at results time, as of the end of each look (daily, then `now`).
  const typed = new Map<string | null, Map<string, TypedMetric>>();
  const typedMetrics = metricRows.filter(computedAtResultsTime);
  if (typedMetrics.length) {
    const looks: [string | null, Date][] = now ? [[null, now]] : lookDays(daily, exposures).map((day) => [day, dayEnd(day)]);
    for (const [day, end] of looks) {
      const byMetric = new Map<string, TypedMetric>();
      for (const m of typedMetrics) byMetric.set(m.id, await loadTypedMetric(db, x, m, armsOf(x), end));
      typed.set(day, byMetric);
    }
  }
  return { metrics: new Map(metricRows.map((m) => [m.id, m])), daily, exposures, typed };
}

/** The UTC days with data, oldest first. */
function lookDays(daily: readonly { day: string }[], exposures: readonly { day: string }[]): string[] {
  return [...new Set([...exposures.map((r) => r.day), ...daily.map((r) => r.day)])].sort();
}

/** The end of a UTC day. */
function dayEnd(day: string): Date {
  const end = new Date(`${day}T00:00:00.000Z`);
  end.setUTCDate(end.getUTCDate() + 1);
  return end;
}

function accumulate(data: Awaited<ReturnType<typeof loadDaily>>, x: ExperimentRow, through: string | null): ResultsInput {
  const sums = new Map<string, Map<string, VariantSums>>();
  for (const r of data.daily) {
    if (through !== null && r.day > through) continue;
    let byVariant = sums.get(r.metric_id);
    if (!byVariant) sums.set(r.metric_id, (byVariant = new Map()));
    const s = byVariant.get(r.variant) ?? { ...ZERO };
    for (const c of SUM_COLUMNS) s[c] += Number(r[c]);
    byVariant.set(r.variant, s);
  }
  const units = new Map<string, number>();
  let conflictingUnits = 0;
  let conflictingExposures = 0;
  for (const r of data.exposures) {
    if (through !== null && r.day > through) continue;
    units.set(r.variant, (units.get(r.variant) ?? 0) + Number(r.units));
    conflictingUnits += Number(r.conflicting_units);
    conflictingExposures += Number(r.conflicting_exposures);
  }
  return { experiment: x, metrics: data.metrics, sums, units, conflictingUnits, conflictingExposures, typed: data.typed.get(through) };
}

/**
 * Carries the always-valid numbers across looks taken in time order: each interval becomes the
 * intersection with the ones before it, each p-value the running minimum. Both stay valid however
 * often they are read (that is what always-valid means), and the intersection is never wider. An
 * empty intersection (the data moved past an earlier interval, possible when the variance used
 * for the mixture moved a lot) keeps the current look's interval.
 */
export function accumulateSequential(looks: readonly Results[]): void {
  type Seen = { abs?: Interval; rel?: Interval; p: number };
  const seen = new Map<string, Seen>();
  const intersect = (prev: Interval | undefined, cur: Interval | undefined): Interval | undefined => {
    // Infinite bounds (one-sided) intersect as any other; NaN ones (no interval yet) do not.
    if (!prev || !cur || [prev.lower, prev.upper, cur.lower, cur.upper].some(Number.isNaN)) return cur;
    const lower = Math.max(prev.lower, cur.lower);
    const upper = Math.min(prev.upper, cur.upper);
    return lower <= upper ? create(IntervalSchema, { lower, upper }) : cur;
  };
  for (const r of looks) {
    for (const m of r.metrics) {
      for (const v of m.variants.slice(1)) {
        const key = `${m.metricKey}\u0000${v.variant}`;
        const prev = seen.get(key);
        if (prev) {
          v.sequentialInterval = intersect(prev.abs, v.sequentialInterval);
          v.relativeSequentialInterval = intersect(prev.rel, v.relativeSequentialInterval);
          if (Number.isFinite(prev.p) && !(v.sequentialPValue <= prev.p)) v.sequentialPValue = prev.p;
        }
        seen.set(key, { abs: v.sequentialInterval, rel: v.relativeSequentialInterval, p: v.sequentialPValue });
      }
    }
  }
}

/**
 * With sequential decisions, decides again on the carried always-valid numbers: their running
 * minimum p-values corrected within each family (Bonferroni, see stats' sequentialAdjusted), the
 * intersected intervals on the results' scale; guardrail flags and warnings follow.
 */
export function decideOnCarried(r: Results, options: AnalysisOptions): void {
  if (!r.sequential) return;
  const families = new Map<string, Results["metrics"][number]["variants"]>();
  for (const m of r.metrics) {
    const family = m.role === "guardrail" ? "guardrail" : "decision";
    families.set(family, [...(families.get(family) ?? []), ...m.variants.slice(1)]);
  }
  const adjusted = new Map<object, number>();
  for (const flat of families.values()) {
    for (const v of flat) adjusted.set(v, sequentialAdjusted(v.sequentialPValue, flat.length, options.correction ?? "benjamini-hochberg"));
  }
  const pair = (i: Interval | undefined): [number, number] => [i?.lower ?? NaN, i?.upper ?? NaN];
  for (const m of r.metrics) {
    for (const v of m.variants.slice(1)) {
      const d = decide(
        {
          direction: m.direction === Direction.DECREASE ? "lower" : "higher",
          absolute: { estimate: v.absoluteLift, ci: pair(v.absoluteLiftInterval), sequentialCi: pair(v.sequentialInterval) },
          relative: { estimate: v.relativeLift, ci: pair(v.relativeLiftInterval), sequentialCi: pair(v.relativeSequentialInterval) },
          adjustedPValue: v.adjustedPValue,
          adjustedSequentialPValue: adjusted.get(v) ?? NaN,
          bayes: null,
        },
        { ...options, engine: "frequentist", sequential: true },
      );
      v.liftInterval = create(IntervalSchema, { lower: d.interval[0], upper: d.interval[1] });
      v.decisionPValue = d.pValue;
      v.significant = d.verdict !== "inconclusive";
      v.guardrailViolated = m.role === "guardrail" && d.verdict === "worse";
    }
  }
  const violated = r.metrics.flatMap((m) =>
    m.variants
      .filter((v) => v.guardrailViolated)
      .map((v) => ({ metricKey: m.metricKey, variant: v.variant, relativeLift: v.relativeLift, adjustedPValue: v.decisionPValue })),
  );
  const others = r.warnings.filter((w) => w.code !== "guardrail_violated");
  const at = others.findIndex((w) => w.code === "bandit_reweighting");
  r.warnings = at < 0 ? [...others, ...guardrailWarnings(violated)] : [...others.slice(0, at), ...guardrailWarnings(violated), ...others.slice(at)];
}

/** Cumulative results at the end of each UTC day with data, oldest first (sequential numbers not yet carried). */
function dailyLooks(data: Awaited<ReturnType<typeof loadDaily>>, x: ExperimentRow, confidenceLevel: number): { end: Date; results: Results }[] {
  return lookDays(data.daily, data.exposures).map((day) => {
    const end = dayEnd(day);
    return { end, results: computeResults(accumulate(data, x, day), confidenceLevel, end) };
  });
}

/** Results now, the sequential numbers carried over the daily looks before it. */
export async function loadResults(db: Db, x: ExperimentRow, confidenceLevel: number): Promise<Results> {
  const at = new Date();
  const data = await loadDaily(db, x, at);
  const now = computeResults(accumulate(data, x, null), confidenceLevel, at);
  accumulateSequential([...dailyLooks(data, x, confidenceLevel).map((l) => l.results), now]);
  decideOnCarried(now, analysisOptions(loadSettings(x.settings), confidenceLevel));
  return now;
}

/** Cumulative results at the end of each UTC day with data, oldest first. */
export async function loadTimeline(db: Db, x: ExperimentRow, confidenceLevel = 0): Promise<TimelinePoint[]> {
  const looks = dailyLooks(await loadDaily(db, x, null), x, confidenceLevel);
  accumulateSequential(looks.map((l) => l.results));
  const options = analysisOptions(loadSettings(x.settings), confidenceLevel);
  for (const l of looks) decideOnCarried(l.results, options);
  return looks.map((l) => create(TimelinePointSchema, { time: timestampFromDate(l.end), results: l.results }));
}
