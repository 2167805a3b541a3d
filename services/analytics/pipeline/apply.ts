/**
 * Applies a batch of events to the aggregates in one transaction: the (environment, event id)
 * pairs go into `processed_events` first (pairs already there are skipped: redeliveries and
 * re-publishes), then exposures become assignments and tracked events update per-unit totals and
 * the per-variant, per-day sums. The caller acknowledges the messages only after this commits, so
 * an event is either applied together with its id, or not at all and redelivered.
 *
 * Before or after the exposure is decided by time, not by arrival: the first exposure applied
 * fixes a unit's variant and its start time T (the evaluator's clock). A tracked event (at its
 * receive time, the collector's clock) counts toward the metric when its time is at least
 * T − skew tolerance, and toward the pre-period covariate (CUPED) otherwise. Tracked events of
 * metric event names are kept in `unit_events`, so an exposure that arrives after events that
 * belong after it (late by the evaluator's 100 ms flush, or by a NATS outage) still splits them
 * correctly: their totals are read back at assignment.
 */
import { sql } from "kysely";
import type { Db, Trx } from "../store.ts";
import {
  type Assignment,
  type ExperimentDef,
  fold,
  type FoldOutput,
  type HistoryRow,
  key,
  type LoadedState,
  type MetricKindName,
  type MetricTotal,
  type NewAssignment,
  type PipelineEvent,
  planAssignments,
  type Track,
} from "./fold.ts";

export type { PipelineEvent } from "./fold.ts";

/** How batches are applied. */
export interface ApplyOptions {
  /**
   * Clock skew tolerated between the evaluator (exposure time) and the collector (receive time):
   * an event up to this long before the exposure still counts after it. Default 1000 ms.
   */
  skewToleranceMs?: number;
}

/** The default of {@link ApplyOptions.skewToleranceMs}. */
export const DEFAULT_SKEW_TOLERANCE_MS = 1000;
/** What applying a batch did. */
export interface ApplyResult {
  applied: number;
  duplicates: number;
  assignments: number;
  conflicts: number;
}

/**
 * Takes a pipeline's lock: its batches are applied one at a time, whichever replica fetched them.
 * A partition's pipeline also holds the unpartitioned pipeline's lock shared (`shared`), so
 * partitions apply in parallel with each other but never beside the unpartitioned stream's drain.
 */
export async function lockPipeline(trx: Trx, name: string, shared?: string): Promise<void> {
  if (shared) await sql`select pg_advisory_xact_lock_shared(hashtext(${`vane:analytics:pipeline:${shared}`}))`.execute(trx);
  await sql`select pg_advisory_xact_lock(hashtext(${`vane:analytics:pipeline:${name}`}))`.execute(trx);
}

/**
 * Applies `events` (any order; sorted here) inside `trx`, in named phases: record the new event
 * ids (dedupe), keep metric events with their time, load what the batch touches, plan the
 * assignments, read back the history of newly assigned units, fold (pure), write.
 */
export async function applyBatch(trx: Trx, input: readonly PipelineEvent[], options: ApplyOptions = {}): Promise<ApplyResult> {
  const toleranceMs = options.skewToleranceMs ?? DEFAULT_SKEW_TOLERANCE_MS;
  const result: ApplyResult = { applied: 0, duplicates: 0, assignments: 0, conflicts: 0 };
  if (input.length === 0) return result;
  const { fresh, events } = await recordNew(trx, input);
  result.duplicates = input.length - fresh;
  result.applied = fresh;
  if (events.length === 0) return result;

  const tracks = await metricTracks(trx, events);
  await keepUnitEvents(trx, tracks);
  const exposures = events.filter((e) => e.kind === "exposure");
  const state = await load(trx, exposures, tracks);
  const planned = planAssignments(exposures, state);
  const history = await readHistory(trx, planned.assigned, toleranceMs);
  const out = fold({ state, planned, history, tracks, toleranceMs });
  await write(trx, out);
  result.assignments = out.assignmentsMade;
  result.conflicts = out.conflicts;
  return result;
}

type Applicable = Exclude<PipelineEvent, { kind: "skip" }>;

/** Dedupe inside the batch, then against everything applied before (same transaction): the events seen for the first time, in stream order. */
async function recordNew(trx: Trx, input: readonly PipelineEvent[]): Promise<{ fresh: number; events: Applicable[] }> {
  const byId = new Map<string, PipelineEvent>();
  for (const e of [...input].sort((a, b) => a.seq - b.seq)) {
    const k = key.event(e.environmentId, e.id);
    if (!byId.has(k)) byId.set(k, e);
  }
  const unique = [...byId.values()];
  const fresh = new Set<string>();
  await chunked(unique, 5000, async (slice) => {
    const rows = await sql<{ environment_id: string; event_id: string }>`
      insert into processed_events (environment_id, event_id)
      select * from unnest(${slice.map((e) => e.environmentId)}::text[], ${slice.map((e) => e.id)}::text[])
      on conflict do nothing returning environment_id, event_id`.execute(trx);
    for (const r of rows.rows) fresh.add(key.event(r.environment_id, r.event_id));
  });
  const events = unique.filter((e): e is Applicable => fresh.has(key.event(e.environmentId, e.id)) && e.kind !== "skip");
  return { fresh: fresh.size, events };
}

/** Tracked events whose name is a metric's event name in their project. */
async function metricTracks(trx: Trx, events: readonly Applicable[]): Promise<Track[]> {
  const projectIds = [...new Set(events.filter((e) => e.kind === "track").map((e) => e.projectId))];
  if (projectIds.length === 0) return [];
  const rows = await trx
    .selectFrom("metrics")
    .select(["project_id", "event_name", "denominator_event_name"])
    .distinct()
    .where("project_id", "in", projectIds)
    .execute();
  // A ratio metric's denominator event is kept too (metric-types/ computes it at results time).
  const metricEvents = new Set(rows.flatMap((r) => [r.event_name, r.denominator_event_name].filter(Boolean).map((name) => `${r.project_id}\u0000${name}`)));
  return events.filter((e): e is Track => e.kind === "track" && metricEvents.has(`${e.projectId}\u0000${e.name}`));
}

/** Keeps metric events with their time first: assignments made by this or a later batch read them back. */
async function keepUnitEvents(trx: Trx, tracks: readonly Track[]): Promise<void> {
  await chunked(tracks, 5000, (c) =>
    sql`insert into unit_events (environment_id, unit_key, event_id, event_name, time, value)
      select * from unnest(${c.map((e) => e.environmentId)}::uuid[], ${c.map((e) => e.unitKey)}::text[], ${c.map((e) => e.id)}::text[],
        ${c.map((e) => e.name)}::text[], ${c.map((e) => e.time.toISOString())}::timestamptz[], ${c.map((e) => e.value)}::float8[])
      on conflict do nothing`.execute(trx),
  );
}

/** The existing assignments of the batch's units, the experiments involved, and those units' metric totals. */
async function load(trx: Trx, exposures: readonly Extract<PipelineEvent, { kind: "exposure" }>[], tracks: readonly Track[]): Promise<LoadedState> {
  const units = new Map<string, Set<string>>(); // environment → unit keys
  for (const e of [...exposures, ...tracks]) {
    let s = units.get(e.environmentId);
    if (!s) units.set(e.environmentId, (s = new Set()));
    s.add(e.unitKey);
  }
  const assignments = new Map<string, Assignment>();
  const experimentIds = new Set(exposures.map((e) => e.experimentId));
  for (const [environmentId, set] of units) {
    await chunked([...set], 5000, async (list) => {
      const rows = await trx
        .selectFrom("assignments")
        .select(["experiment_id", "unit_key", "variant", "conflicting_exposures", "first_exposure_at"])
        .where("environment_id", "=", environmentId)
        // One array parameter rather than thousands: planning a long IN list costs more than the lookup.
        .where(sql<boolean>`unit_key = any(${list}::text[])`)
        .execute();
      for (const r of rows) {
        assignments.set(key.assignment(r.experiment_id, r.unit_key), {
          experimentId: r.experiment_id,
          unitKey: r.unit_key,
          environmentId,
          variant: r.variant,
          firstExposureAt: r.first_exposure_at,
          conflicts: r.conflicting_exposures,
          dirty: false,
        });
        experimentIds.add(r.experiment_id);
      }
    });
  }
  const experiments = await loadExperiments(
    trx,
    [...experimentIds].filter((id) => /^[0-9a-f-]{36}$/i.test(id)),
  );

  const totals = new Map<string, MetricTotal>();
  await chunked([...assignments.values()], 5000, async (slice) => {
    const rows = await sql<{ experiment_id: string; metric_id: string; unit_key: string; count: number; sum: number; covariate: number }>`
      select t.experiment_id, t.metric_id, t.unit_key, t.count, t.sum, t.covariate
      from unit_metric_totals t
      join unnest(${slice.map((a) => a.experimentId)}::uuid[], ${slice.map((a) => a.unitKey)}::text[]) as u(experiment_id, unit_key)
        on t.experiment_id = u.experiment_id and t.unit_key = u.unit_key`.execute(trx);
    for (const r of rows.rows) {
      totals.set(key.total(r.experiment_id, r.metric_id, r.unit_key), {
        experimentId: r.experiment_id,
        metricId: r.metric_id,
        unitKey: r.unit_key,
        count: r.count,
        sum: r.sum,
        covariate: r.covariate,
        dirty: false,
      });
    }
  });
  return { experiments, assignments, totals };
}

async function loadExperiments(trx: Trx, ids: string[]): Promise<Map<string, ExperimentDef>> {
  const experiments = new Map<string, ExperimentDef>();
  if (ids.length === 0) return experiments;
  const rows = await trx.selectFrom("experiments").select(["id", "environment_id", "variants", "stop_time", "metric_ids"]).where("id", "in", ids).execute();
  const metricIds = [...new Set(rows.flatMap((r) => Object.values(r.metric_ids)))];
  const metricRows = metricIds.length ? await trx.selectFrom("metrics").select(["id", "event_name", "kind"]).where("id", "in", metricIds).execute() : [];
  const metricById = new Map(metricRows.map((m) => [m.id, m]));
  for (const r of rows) {
    const metrics = Object.values(r.metric_ids)
      .map((id) => metricById.get(id))
      .filter((m) => m !== undefined)
      .map((m) => ({ id: m.id, eventName: m.event_name, kind: m.kind as MetricKindName }));
    const metricsByEvent = new Map<string, { id: string; kind: MetricKindName }[]>();
    for (const m of metrics) metricsByEvent.set(m.eventName, [...(metricsByEvent.get(m.eventName) ?? []), { id: m.id, kind: m.kind }]);
    experiments.set(r.id, {
      id: r.id,
      environmentId: r.environment_id,
      variants: new Set(r.variants.map((v) => v.variant)),
      stopTime: r.stop_time,
      metricsByEvent,
      metrics,
    });
  }
  return experiments;
}

/** Per new assignment, the unit's stored events (this batch's included) split at T − tolerance, per day after it. */
async function readHistory(trx: Trx, assigned: readonly NewAssignment[], toleranceMs: number): Promise<HistoryRow[][]> {
  const history: HistoryRow[][] = assigned.map(() => []);
  for (let i = 0; i < assigned.length; i += 5000) {
    const slice = assigned.slice(i, i + 5000);
    const rows = await sql<{ i: number; event_name: string; post: boolean; day: string | null; count: number; sum: number }>`
      select u.i, e.event_name, e.time >= u.boundary as post,
        case when e.time >= u.boundary then ((e.time at time zone 'UTC')::date)::text end as day,
        count(*)::float8 as count, sum(e.value)::float8 as sum
      from unnest(${slice.map((_, j) => i + j)}::int[], ${slice.map((a) => a.environmentId)}::uuid[], ${slice.map((a) => a.unitKey)}::text[],
        ${slice.map((a) => new Date(a.time.getTime() - toleranceMs).toISOString())}::timestamptz[], ${slice.map((a) => a.experiment.stopTime?.toISOString() ?? null)}::timestamptz[])
        as u(i, environment_id, unit_key, boundary, stop_time)
      join unit_events e on e.environment_id = u.environment_id and e.unit_key = u.unit_key
      where u.stop_time is null or e.time < u.stop_time or e.time < u.boundary
      group by 1, 2, 3, 4
      order by 1, 4`.execute(trx);
    for (const r of rows.rows) history[r.i].push({ eventName: r.event_name, post: r.post, day: r.day, count: Number(r.count), sum: Number(r.sum) });
  }
  return history;
}

async function chunked<T>(rows: readonly T[], size: number, fn: (chunk: T[]) => Promise<unknown>): Promise<void> {
  for (let i = 0; i < rows.length; i += size) await fn(rows.slice(i, i + size));
}

/** Sorts rows by their conflict key, so concurrent partitions lock shared rows in one order (no deadlocks). */
function byKey<T>(rows: readonly T[], keyOf: (r: T) => string): T[] {
  return rows
    .map((r) => [keyOf(r), r] as const)
    .sort((a, b) => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0))
    .map(([, r]) => r);
}

/** Writes the fold's output: assignments and totals replaced, daily sums added to. */
async function write(trx: Trx, unsorted: FoldOutput): Promise<void> {
  const out = {
    ...unsorted,
    variantDeltas: byKey(unsorted.variantDeltas, (r) => `${r.experimentId}/${r.metricId}/${r.variant}/${r.day}`),
    exposureDeltas: byKey(unsorted.exposureDeltas, (r) => `${r.experimentId}/${r.variant}/${r.day}`),
  };
  await chunked(out.assignments, 5000, (c) =>
    sql`insert into assignments (experiment_id, unit_key, environment_id, variant, first_exposure_at, conflicting_exposures, dimensions)
      select * from unnest(${c.map((a) => a.experimentId)}::uuid[], ${c.map((a) => a.unitKey)}::text[], ${c.map((a) => a.environmentId)}::uuid[],
        ${c.map((a) => a.variant)}::text[], ${c.map((a) => a.firstExposureAt.toISOString())}::timestamptz[], ${c.map((a) => a.conflicts)}::int[],
        ${c.map((a) => JSON.stringify(a.dimensions ?? {}))}::jsonb[])
      on conflict (experiment_id, unit_key) do update set conflicting_exposures = excluded.conflicting_exposures`.execute(trx),
  );
  await chunked(out.totals, 5000, (c) =>
    sql`insert into unit_metric_totals (experiment_id, metric_id, unit_key, count, sum, covariate)
      select * from unnest(${c.map((t) => t.experimentId)}::uuid[], ${c.map((t) => t.metricId)}::uuid[], ${c.map((t) => t.unitKey)}::text[],
        ${c.map((t) => t.count)}::float8[], ${c.map((t) => t.sum)}::float8[], ${c.map((t) => t.covariate)}::float8[])
      on conflict (experiment_id, unit_key, metric_id) do update set count = excluded.count, sum = excluded.sum, covariate = excluded.covariate`.execute(trx),
  );
  await chunked(out.variantDeltas, 2000, (c) =>
    sql`insert into variant_daily as t (experiment_id, metric_id, variant, day, units, sum, sum_squares, count_sum, count_squares, sum_count_product, cov_sum, cov_squares, cov_product)
      select * from unnest(${c.map((r) => r.experimentId)}::uuid[], ${c.map((r) => r.metricId)}::uuid[], ${c.map((r) => r.variant)}::text[], ${c.map((r) => r.day)}::date[],
        ${c.map((r) => r.units)}::float8[], ${c.map((r) => r.sum)}::float8[], ${c.map((r) => r.sumSquares)}::float8[], ${c.map((r) => r.countSum)}::float8[],
        ${c.map((r) => r.countSquares)}::float8[], ${c.map((r) => r.sumCountProduct)}::float8[], ${c.map((r) => r.covSum)}::float8[],
        ${c.map((r) => r.covSquares)}::float8[], ${c.map((r) => r.covProduct)}::float8[])
      on conflict (experiment_id, metric_id, variant, day) do update set
        units = t.units + excluded.units, sum = t.sum + excluded.sum, sum_squares = t.sum_squares + excluded.sum_squares,
        count_sum = t.count_sum + excluded.count_sum, count_squares = t.count_squares + excluded.count_squares,
        sum_count_product = t.sum_count_product + excluded.sum_count_product, cov_sum = t.cov_sum + excluded.cov_sum,
        cov_squares = t.cov_squares + excluded.cov_squares, cov_product = t.cov_product + excluded.cov_product`.execute(trx),
  );
  await chunked(out.exposureDeltas, 5000, (c) =>
    sql`insert into exposure_daily as t (experiment_id, variant, day, units, conflicting_units, conflicting_exposures)
      select * from unnest(${c.map((r) => r.experimentId)}::uuid[], ${c.map((r) => r.variant)}::text[], ${c.map((r) => r.day)}::date[],
        ${c.map((r) => r.units)}::float8[], ${c.map((r) => r.conflictingUnits)}::float8[], ${c.map((r) => r.conflictingExposures)}::float8[])
      on conflict (experiment_id, variant, day) do update set units = t.units + excluded.units,
        conflicting_units = t.conflicting_units + excluded.conflicting_units, conflicting_exposures = t.conflicting_exposures + excluded.conflicting_exposures`.execute(
      trx,
    ),
  );
}

/** Deletes dedupe keys older than the stream can redeliver (its max age plus a margin). */
export async function pruneProcessed(db: Db, olderThanMs: number): Promise<number> {
  const r = await db
    .deleteFrom("processed_events")
    .where(sql<boolean>`processed_at < now() - make_interval(secs => ${olderThanMs / 1000})`)
    .executeTakeFirst();
  return Number(r.numDeletedRows);
}
