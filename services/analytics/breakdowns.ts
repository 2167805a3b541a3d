/**
 * Results broken down by one context attribute of the units' first exposures (an experiment's
 * breakdown dimension). Per-unit totals joined with the assignments give, per segment, exactly the
 * per-variant sums the main results use, so each segment goes through the same computeResults.
 * Cardinality is bounded at read time: the most populous values (by units, all arms) keep their
 * own segment, the rest are pooled as "(other)", units without the attribute are "(none)". The
 * p-values are then corrected again across the whole breakdown — every segment × metric × arm,
 * guardrails among themselves — because reading many segments is many tests.
 */
import { create } from "@bufbuild/protobuf";
import { sql } from "kysely";
import {
  type Breakdown,
  BreakdownSchema,
  Direction,
  type Interval,
  type ResultWarning,
  ResultWarningSchema,
  type Results,
} from "#gen/vane/experiments/v1/experiments_pb.js";
import { computeResults, type ResultsInput, type VariantSums } from "./results.ts";
import { analysisOptions, loadSettings } from "./experiment-settings.ts";
import { adjustPValues, type AnalysisOptions, type Correction, decide, sequentialAdjusted } from "./stats/index.ts";
import type { ExperimentRow } from "./schema.ts";
import type { Db } from "./store.ts";

export const NONE_VALUE = "(none)";
export const OTHER_VALUE = "(other)";
export const DEFAULT_BREAKDOWN_LIMIT = 10;

const SUMS = ["units", "sum", "sum_squares", "count_sum", "count_squares", "sum_count_product", "cov_sum", "cov_squares", "cov_product"] as const;
const zero = (): VariantSums => ({
  units: 0,
  sum: 0,
  sum_squares: 0,
  count_sum: 0,
  count_squares: 0,
  sum_count_product: 0,
  cov_sum: 0,
  cov_squares: 0,
  cov_product: 0,
});

/** Rows of one segment value, before bounding. */
export interface SegmentRows {
  units: { variant: string; units: number; conflictingUnits: number; conflictingExposures: number }[];
  sums: ({ variant: string; metric_id: string } & VariantSums)[];
}

/** The segments to show: the `limit` most populous values, then "(none)", then the rest pooled as "(other)". */
export function boundSegments(byValue: ReadonlyMap<string | null, SegmentRows>, limit: number): { value: string; rows: SegmentRows }[] {
  const total = (r: SegmentRows) => r.units.reduce((a, u) => a + u.units, 0);
  const ranked = [...byValue.entries()].filter(([v]) => v !== null).sort(([a, ra], [b, rb]) => total(rb) - total(ra) || (a! < b! ? -1 : 1)) as [
    string,
    SegmentRows,
  ][];
  const out = ranked.slice(0, limit).map(([value, rows]) => ({ value, rows }));
  const none = byValue.get(null);
  if (none) out.push({ value: NONE_VALUE, rows: none });
  const rest = ranked.slice(limit);
  if (rest.length > 0) out.push({ value: OTHER_VALUE, rows: { units: rest.flatMap(([, r]) => r.units), sums: rest.flatMap(([, r]) => r.sums) } });
  return out;
}

function inputOf(x: ExperimentRow, metrics: ResultsInput["metrics"], rows: SegmentRows): ResultsInput {
  const sums = new Map<string, Map<string, VariantSums>>();
  for (const r of rows.sums) {
    let byVariant = sums.get(r.metric_id);
    if (!byVariant) sums.set(r.metric_id, (byVariant = new Map()));
    const s = byVariant.get(r.variant) ?? zero();
    for (const c of SUMS) s[c] += Number(r[c]);
    byVariant.set(r.variant, s);
  }
  const units = new Map<string, number>();
  let conflictingUnits = 0;
  let conflictingExposures = 0;
  for (const u of rows.units) {
    units.set(u.variant, (units.get(u.variant) ?? 0) + u.units);
    conflictingUnits += u.conflictingUnits;
    conflictingExposures += u.conflictingExposures;
  }
  return { experiment: x, metrics, sums, units, conflictingUnits, conflictingExposures };
}

/**
 * Corrects the p-values of every segment's comparisons together, per family (guardrails apart),
 * with the experiment's correction, and decides again on them as the main results decide (the
 * experiment's scale, sides and sequential setting; the Bayesian engine decides on chances, not
 * p-values, so only the adjusted p-values change there). Returns the number of comparisons.
 */
export function correctAcrossSegments(segments: readonly Results[], options: AnalysisOptions & { alpha: number }): number {
  const method: Correction = options.correction ?? "benjamini-hochberg";
  const families = new Map<string, { v: Results["metrics"][number]["variants"][number]; m: Results["metrics"][number] }[]>();
  for (const s of segments)
    for (const m of s.metrics) {
      const family = m.role === "guardrail" ? "guardrail" : "decision";
      const list = families.get(family) ?? [];
      for (const v of m.variants.slice(1)) list.push({ v, m });
      families.set(family, list);
    }
  const pair = (i: Interval | undefined): [number, number] => [i?.lower ?? NaN, i?.upper ?? NaN];
  let comparisons = 0;
  for (const list of families.values()) {
    const adjusted = adjustPValues(
      list.map((e) => e.v.pValue),
      method,
    );
    list.forEach(({ v, m }, i) => {
      v.adjustedPValue = adjusted[i];
      if (options.engine === "bayesian") return;
      const d = decide(
        {
          direction: m.direction === Direction.DECREASE ? "lower" : "higher",
          absolute: { estimate: v.absoluteLift, ci: pair(v.absoluteLiftInterval), sequentialCi: pair(v.sequentialInterval) },
          relative: { estimate: v.relativeLift, ci: pair(v.relativeLiftInterval), sequentialCi: pair(v.relativeSequentialInterval) },
          adjustedPValue: adjusted[i],
          adjustedSequentialPValue: sequentialAdjusted(v.sequentialPValue, list.length, method),
          bayes: null,
        },
        options,
      );
      v.decisionPValue = d.pValue;
      v.significant = d.verdict !== "inconclusive";
      v.guardrailViolated = m.role === "guardrail" && d.verdict === "worse";
    });
    comparisons += list.filter((e) => !Number.isNaN(e.v.pValue)).length;
  }
  return comparisons;
}

const num = (n: number) => n.toLocaleString("en-US");

/** The breakdown's own warnings: first that it is not the result; then what stands out. */
export function breakdownWarnings(
  dimension: string,
  segments: readonly { value: string; results: Results }[],
  comparisons: number,
  correction: string,
): ResultWarning[] {
  const out: ResultWarning[] = [
    create(ResultWarningSchema, {
      code: "breakdown_not_main_result",
      message:
        `This splits the experiment by "${dimension}" to explore where an effect comes from; it is not the experiment's result. ` +
        `Its ${num(comparisons)} comparisons are corrected together (${correction}), each segment has fewer units than the whole, and a segment that ` +
        "looks different is often chance: decide on the overall results, and confirm a segment's effect with an experiment targeted at it.",
    }),
  ];
  if (segments.length > 0 && segments.every((s) => s.value === NONE_VALUE))
    out.push(
      create(ResultWarningSchema, {
        code: "breakdown_no_values",
        message:
          `No unit's exposure carried "${dimension}": evaluations must send it in the context (primitive value), and only units first exposed ` +
          "after the experiment started with this dimension carry it.",
      }),
    );
  for (const s of segments)
    for (const m of s.results.metrics)
      for (const v of m.variants.slice(1))
        if (v.guardrailViolated)
          out.push(
            create(ResultWarningSchema, {
              code: "guardrail_violated",
              metricKey: m.metricKey,
              variant: v.variant,
              message: `In segment ${dimension} = "${s.value}", guardrail "${m.metricKey}" is significantly worse in variant "${v.variant}" (corrected across the breakdown, p = ${v.decisionPValue.toPrecision(2)}).`,
            }),
          );
  return out;
}

/** Loads one consistent snapshot of the segment rows (a committing batch is in all of them or none). */
async function loadRows(db: Db, x: ExperimentRow, dimension: string): Promise<{ metrics: ResultsInput["metrics"]; byValue: Map<string | null, SegmentRows> }> {
  return db
    .transaction()
    .setIsolationLevel("repeatable read")
    .setAccessMode("read only")
    .execute(async (trx) => {
      const metricIds = Object.values(x.metric_ids);
      const metricRows = metricIds.length ? await trx.selectFrom("metrics").selectAll().where("id", "in", metricIds).execute() : [];
      const units = await sql<{ value: string | null; variant: string; units: number; conflicting_units: number; conflicting_exposures: number }>`
        select dimensions ->> ${dimension} as value, variant, count(*)::float8 as units,
          count(*) filter (where conflicting_exposures > 0)::float8 as conflicting_units, coalesce(sum(conflicting_exposures), 0)::float8 as conflicting_exposures
        from assignments where experiment_id = ${x.id} group by 1, 2`.execute(trx);
      // The per-unit value y and denominator d exactly as the pipeline folds them (fold.ts unitValue).
      const sums = await sql<{ value: string | null; variant: string; metric_id: string } & VariantSums>`
        with u as (
          select a.dimensions ->> ${dimension} as value, a.variant, t.metric_id, t.count as d, t.covariate as c,
            case m.kind when 'conversion' then (t.count > 0)::int::float8 when 'count' then t.count else t.sum end as y
          from unit_metric_totals t
          join assignments a on a.experiment_id = t.experiment_id and a.unit_key = t.unit_key
          join metrics m on m.id = t.metric_id
          where t.experiment_id = ${x.id})
        select value, variant, metric_id, count(*)::float8 as units, sum(y) as sum, sum(y * y) as sum_squares, sum(d) as count_sum,
          sum(d * d) as count_squares, sum(y * d) as sum_count_product, sum(c) as cov_sum, sum(c * c) as cov_squares, sum(c * y) as cov_product
        from u group by 1, 2, 3`.execute(trx);
      const byValue = new Map<string | null, SegmentRows>();
      const rowsOf = (v: string | null) => {
        let r = byValue.get(v);
        if (!r) byValue.set(v, (r = { units: [], sums: [] }));
        return r;
      };
      for (const r of units.rows)
        rowsOf(r.value).units.push({
          variant: r.variant,
          units: Number(r.units),
          conflictingUnits: Number(r.conflicting_units),
          conflictingExposures: Number(r.conflicting_exposures),
        });
      for (const r of sums.rows) rowsOf(r.value).sums.push(r);
      return { metrics: new Map(metricRows.map((m) => [m.id, m])), byValue };
    });
}

/** The experiment's results by one of its breakdown dimensions. */
export async function loadBreakdown(db: Db, x: ExperimentRow, dimension: string, limit: number, confidenceLevel: number): Promise<Breakdown> {
  const { metrics, byValue } = await loadRows(db, x, dimension);
  const now = new Date();
  const segments = boundSegments(byValue, limit > 0 ? limit : DEFAULT_BREAKDOWN_LIMIT).map((s) => ({
    value: s.value,
    units: s.rows.units.reduce((a, u) => a + u.units, 0),
    results: computeResults(inputOf(x, metrics, s.rows), confidenceLevel, now),
  }));
  // The segments' own guardrail warnings were made before the breakdown-wide correction.
  for (const s of segments) s.results.warnings = s.results.warnings.filter((w) => w.code !== "guardrail_violated");
  const options = analysisOptions(loadSettings(x.settings), confidenceLevel);
  const correction = options.correction ?? "benjamini-hochberg";
  const comparisons = correctAcrossSegments(
    segments.map((s) => s.results),
    options,
  );
  return create(BreakdownSchema, {
    dimension,
    comparisons: BigInt(comparisons),
    segments: segments.map((s) => ({ value: s.value, units: BigInt(s.units), results: s.results })),
    warnings: breakdownWarnings(dimension, segments, comparisons, correction),
  });
}
