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

/** A decoded event of the batch. */
export type PipelineEvent =
  | { kind: "exposure"; id: string; seq: number; environmentId: string; time: Date; experimentId: string; variant: string; unitKey: string }
  | { kind: "track"; id: string; seq: number; environmentId: string; projectId: string; time: Date; name: string; unitKey: string; value: number }
  /** Undecodable or irrelevant: only its id is recorded ("" when its environment is unknown). */
  | { kind: "skip"; id: string; seq: number; environmentId: string };

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

type MetricKindName = "conversion" | "count" | "sum" | "mean";

interface Assignment {
  variant: string;
  conflicts: number;
  isNew: boolean;
  dirty: boolean;
  environmentId: string;
  firstExposureAt: Date;
}

interface MetricTotal {
  count: number;
  sum: number;
  covariate: number;
  dirty: boolean;
}

interface ExperimentDef {
  id: string;
  environmentId: string;
  variants: Set<string>;
  stopTime: Date | null;
  /** Metrics of the experiment by event name. */
  metricsByEvent: Map<string, { id: string; kind: MetricKindName }[]>;
  metrics: { id: string; eventName: string; kind: MetricKindName }[];
}

/** The per-unit value y of a metric from a unit's count and sum of values. */
export function unitValue(kind: MetricKindName, count: number, sum: number): number {
  if (kind === "conversion") return count > 0 ? 1 : 0;
  if (kind === "count") return count;
  return sum; // sum, and the numerator of mean (whose denominator is the count)
}

const dayOf = (d: Date) => d.toISOString().slice(0, 10);
const k2 = (a: string, b: string) => `${a}\u0000${b}`;
const k3 = (a: string, b: string, c: string) => `${a}\u0000${b}\u0000${c}`;

interface VariantDelta {
  experimentId: string;
  metricId: string;
  variant: string;
  day: string;
  units: number;
  sum: number;
  sumSquares: number;
  countSum: number;
  countSquares: number;
  sumCountProduct: number;
  covSum: number;
  covSquares: number;
  covProduct: number;
}

interface ExposureDelta {
  experimentId: string;
  variant: string;
  day: string;
  units: number;
  conflictingUnits: number;
  conflictingExposures: number;
}

/** Takes the pipeline's lock: batches are applied one at a time, whichever replica fetched them. */
export async function lockPipeline(trx: Trx, name: string): Promise<void> {
  await sql`select pg_advisory_xact_lock(hashtext(${`vane:analytics:pipeline:${name}`}))`.execute(trx);
}

/** Applies `events` (any order; sorted here) inside `trx`. */
export async function applyBatch(trx: Trx, input: readonly PipelineEvent[], options: ApplyOptions = {}): Promise<ApplyResult> {
  const tolerance = options.skewToleranceMs ?? DEFAULT_SKEW_TOLERANCE_MS;
  const result: ApplyResult = { applied: 0, duplicates: 0, assignments: 0, conflicts: 0 };
  if (input.length === 0) return result;
  // Dedupe inside the batch, then against everything applied before (same transaction).
  const byId = new Map<string, PipelineEvent>();
  for (const e of [...input].sort((a, b) => a.seq - b.seq)) {
    const key = k2(e.environmentId, e.id);
    if (!byId.has(key)) byId.set(key, e);
  }
  const keys = [...byId.values()];
  const fresh = new Set<string>();
  for (let i = 0; i < keys.length; i += 5000) {
    const slice = keys.slice(i, i + 5000);
    const rows = await sql<{ environment_id: string; event_id: string }>`
      insert into processed_events (environment_id, event_id)
      select * from unnest(${slice.map((e) => e.environmentId)}::text[], ${slice.map((e) => e.id)}::text[])
      on conflict do nothing returning environment_id, event_id`.execute(trx);
    for (const r of rows.rows) fresh.add(k2(r.environment_id, r.event_id));
  }
  result.duplicates = input.length - fresh.size;
  const events = keys.filter((e) => fresh.has(k2(e.environmentId, e.id)) && e.kind !== "skip") as Exclude<PipelineEvent, { kind: "skip" }>[];
  result.applied = fresh.size;
  if (events.length === 0) return result;

  // Experiments named by exposures, and metrics of the projects tracked events belong to.
  const exposureExperimentIds = new Set(events.filter((e) => e.kind === "exposure").map((e) => e.experimentId));
  const projectIds = [...new Set(events.filter((e) => e.kind === "track").map((e) => e.projectId))];
  const metricEvents = new Set<string>(); // project\0event_name
  if (projectIds.length) {
    const rows = await trx.selectFrom("metrics").select(["project_id", "event_name"]).distinct().where("project_id", "in", projectIds).execute();
    for (const r of rows) metricEvents.add(k2(r.project_id, r.event_name));
  }
  const tracks = events.filter((e) => e.kind === "track" && metricEvents.has(k2(e.projectId, e.name))) as Extract<PipelineEvent, { kind: "track" }>[];

  // Keep metric events with their time first: assignments made below read them back.
  await chunked(tracks, 5000, (c) =>
    sql`insert into unit_events (environment_id, unit_key, event_id, event_name, time, value)
      select * from unnest(${c.map((e) => e.environmentId)}::uuid[], ${c.map((e) => e.unitKey)}::text[], ${c.map((e) => e.id)}::text[],
        ${c.map((e) => e.name)}::text[], ${c.map((e) => e.time.toISOString())}::timestamptz[], ${c.map((e) => e.value)}::float8[])
      on conflict do nothing`.execute(trx),
  );

  // Units involved, per environment.
  const units = new Map<string, Set<string>>();
  const addUnit = (env: string, unit: string) => {
    let s = units.get(env);
    if (!s) units.set(env, (s = new Set()));
    s.add(unit);
  };
  for (const e of events) if (e.kind === "exposure") addUnit(e.environmentId, e.unitKey);
  for (const e of tracks) addUnit(e.environmentId, e.unitKey);

  // Existing assignments of those units.
  const assignments = new Map<string, Assignment>();
  const unitExperiments = new Map<string, Set<string>>(); // env\0unit → experiment ids
  const linkUnit = (env: string, unit: string, experimentId: string) => {
    const key = k2(env, unit);
    let s = unitExperiments.get(key);
    if (!s) unitExperiments.set(key, (s = new Set()));
    s.add(experimentId);
  };
  for (const [env, set] of units) {
    const list = [...set];
    for (let i = 0; i < list.length; i += 5000) {
      const rows = await trx
        .selectFrom("assignments")
        .select(["experiment_id", "unit_key", "variant", "conflicting_exposures", "first_exposure_at"])
        .where("environment_id", "=", env)
        // One array parameter rather than thousands: planning a long IN list costs more than the lookup.
        .where(sql<boolean>`unit_key = any(${list.slice(i, i + 5000)}::text[])`)
        .execute();
      for (const r of rows) {
        assignments.set(k2(r.experiment_id, r.unit_key), {
          variant: r.variant,
          conflicts: r.conflicting_exposures,
          isNew: false,
          dirty: false,
          environmentId: env,
          firstExposureAt: r.first_exposure_at,
        });
        linkUnit(env, r.unit_key, r.experiment_id);
        exposureExperimentIds.add(r.experiment_id);
      }
    }
  }

  // Definitions of every experiment involved.
  const experiments = new Map<string, ExperimentDef>();
  const experimentIds = [...exposureExperimentIds].filter((id) => /^[0-9a-f-]{36}$/i.test(id));
  if (experimentIds.length) {
    const rows = await trx
      .selectFrom("experiments")
      .select(["id", "environment_id", "variants", "stop_time", "metric_ids"])
      .where("id", "in", experimentIds)
      .execute();
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
  }

  // Metric totals of the units already assigned.
  const metricTotals = new Map<string, MetricTotal>(); // exp\0metric\0unit
  const assignedPairs = [...assignments.keys()].map((k) => k.split("\u0000"));
  for (let i = 0; i < assignedPairs.length; i += 5000) {
    const slice = assignedPairs.slice(i, i + 5000);
    const rows = await sql<{ experiment_id: string; metric_id: string; unit_key: string; count: number; sum: number; covariate: number }>`
      select t.experiment_id, t.metric_id, t.unit_key, t.count, t.sum, t.covariate
      from unit_metric_totals t
      join unnest(${slice.map((p) => p[0])}::uuid[], ${slice.map((p) => p[1])}::text[]) as u(experiment_id, unit_key)
        on t.experiment_id = u.experiment_id and t.unit_key = u.unit_key`.execute(trx);
    for (const r of rows.rows)
      metricTotals.set(k3(r.experiment_id, r.metric_id, r.unit_key), { count: r.count, sum: r.sum, covariate: r.covariate, dirty: false });
  }

  const variantDeltas = new Map<string, VariantDelta>();
  const variantDelta = (experimentId: string, metricId: string, variant: string, day: string): VariantDelta => {
    const key = `${experimentId}\u0000${metricId}\u0000${variant}\u0000${day}`;
    let d = variantDeltas.get(key);
    if (!d) {
      d = {
        experimentId,
        metricId,
        variant,
        day,
        units: 0,
        sum: 0,
        sumSquares: 0,
        countSum: 0,
        countSquares: 0,
        sumCountProduct: 0,
        covSum: 0,
        covSquares: 0,
        covProduct: 0,
      };
      variantDeltas.set(key, d);
    }
    return d;
  };
  const exposureDeltas = new Map<string, ExposureDelta>();
  const exposureDelta = (experimentId: string, variant: string, day: string): ExposureDelta => {
    const key = k3(experimentId, variant, day);
    let d = exposureDeltas.get(key);
    if (!d) exposureDeltas.set(key, (d = { experimentId, variant, day, units: 0, conflictingUnits: 0, conflictingExposures: 0 }));
    return d;
  };
  const active = (x: ExperimentDef, time: Date) => x.stopTime === null || time < x.stopTime;
  /** Adds one more event (count +1, sum +value) to a unit's metric total, on the event's day. */
  const addToMetric = (
    x: ExperimentDef,
    m: { id: string; kind: MetricKindName },
    unitKey: string,
    variant: string,
    day: string,
    count: number,
    value: number,
  ) => {
    const key = k3(x.id, m.id, unitKey);
    const mt = metricTotals.get(key) ?? { count: 0, sum: 0, covariate: 0, dirty: true };
    const y0 = unitValue(m.kind, mt.count, mt.sum);
    const d0 = mt.count;
    mt.count += count;
    mt.sum += value;
    mt.dirty = true;
    metricTotals.set(key, mt);
    const y1 = unitValue(m.kind, mt.count, mt.sum);
    const d1 = mt.count;
    const d = variantDelta(x.id, m.id, variant, day);
    d.sum += y1 - y0;
    d.sumSquares += y1 * y1 - y0 * y0;
    d.countSum += d1 - d0;
    d.countSquares += d1 * d1 - d0 * d0;
    d.sumCountProduct += y1 * d1 - y0 * d0;
    d.covProduct += mt.covariate * (y1 - y0);
  };

  // Exposures, in stream order: the first one applied fixes the variant and the start time.
  const assignedNow: { x: ExperimentDef; unitKey: string; environmentId: string; variant: string; time: Date }[] = [];
  for (const e of events) {
    if (e.kind !== "exposure") continue;
    const day = dayOf(e.time);
    const x = experiments.get(e.experimentId);
    if (!x || x.environmentId !== e.environmentId || !x.variants.has(e.variant) || !active(x, e.time)) continue;
    const key = k2(x.id, e.unitKey);
    const a = assignments.get(key);
    if (a) {
      if (a.variant !== e.variant) {
        const d = exposureDelta(x.id, a.variant, day);
        if (a.conflicts === 0) d.conflictingUnits++;
        d.conflictingExposures++;
        a.conflicts++;
        a.dirty = true;
        result.conflicts++;
      }
      continue;
    }
    assignments.set(key, { variant: e.variant, conflicts: 0, isNew: true, dirty: true, environmentId: e.environmentId, firstExposureAt: e.time });
    linkUnit(e.environmentId, e.unitKey, x.id);
    result.assignments++;
    exposureDelta(x.id, e.variant, day).units++;
    assignedNow.push({ x, unitKey: e.unitKey, environmentId: e.environmentId, variant: e.variant, time: e.time });
  }

  // New assignments: the unit's events so far (this batch's included), split at T − tolerance.
  const assignedNowKeys = new Set<string>();
  for (let i = 0; i < assignedNow.length; i += 5000) {
    const slice = assignedNow.slice(i, i + 5000);
    const rows = await sql<{ i: number; event_name: string; post: boolean; day: string | null; count: number; sum: number }>`
      select u.i, e.event_name, e.time >= u.boundary as post,
        case when e.time >= u.boundary then ((e.time at time zone 'UTC')::date)::text end as day,
        count(*)::float8 as count, sum(e.value)::float8 as sum
      from unnest(${slice.map((_, j) => i + j)}::int[], ${slice.map((a) => a.environmentId)}::uuid[], ${slice.map((a) => a.unitKey)}::text[],
        ${slice.map((a) => new Date(a.time.getTime() - tolerance).toISOString())}::timestamptz[], ${slice.map((a) => a.x.stopTime?.toISOString() ?? null)}::timestamptz[])
        as u(i, environment_id, unit_key, boundary, stop_time)
      join unit_events e on e.environment_id = u.environment_id and e.unit_key = u.unit_key
      where u.stop_time is null or e.time < u.stop_time or e.time < u.boundary
      group by 1, 2, 3, 4
      order by 1, 4`.execute(trx);
    const byAssignment = new Map<number, typeof rows.rows>();
    for (const r of rows.rows) byAssignment.set(r.i, [...(byAssignment.get(r.i) ?? []), r]);
    for (const [j, a] of slice.entries()) {
      assignedNowKeys.add(k2(a.x.id, a.unitKey));
      const own = byAssignment.get(i + j) ?? [];
      for (const m of a.x.metrics) {
        const mine = own.filter((r) => r.event_name === m.eventName);
        const pre = mine.find((r) => !r.post);
        const covariate = unitValue(m.kind, Number(pre?.count ?? 0), Number(pre?.sum ?? 0));
        metricTotals.set(k3(a.x.id, m.id, a.unitKey), { count: 0, sum: 0, covariate, dirty: true });
        const d = variantDelta(a.x.id, m.id, a.variant, dayOf(a.time));
        d.units++;
        d.covSum += covariate;
        d.covSquares += covariate * covariate;
        // Events after the exposure that arrived before it: added day by day, as if in time.
        for (const r of mine.filter((r) => r.post)) addToMetric(a.x, m, a.unitKey, a.variant, r.day!, Number(r.count), Number(r.sum));
      }
    }
  }

  // Tracked events of units assigned before this batch.
  for (const e of tracks) {
    for (const experimentId of unitExperiments.get(k2(e.environmentId, e.unitKey)) ?? []) {
      if (assignedNowKeys.has(k2(experimentId, e.unitKey))) continue; // read back above
      const x = experiments.get(experimentId);
      const ms = x?.metricsByEvent.get(e.name);
      if (!x || !ms) continue;
      const a = assignments.get(k2(experimentId, e.unitKey))!;
      if (e.time.getTime() >= a.firstExposureAt.getTime() - tolerance) {
        if (!active(x, e.time)) continue;
        for (const m of ms) addToMetric(x, m, e.unitKey, a.variant, dayOf(e.time), 1, e.value);
        continue;
      }
      // Happened before the exposure but arrived after it: it belongs to the covariate.
      for (const m of ms) {
        const key = k3(experimentId, m.id, e.unitKey);
        const mt = metricTotals.get(key) ?? { count: 0, sum: 0, covariate: 0, dirty: true };
        const c0 = mt.covariate;
        const c1 = m.kind === "conversion" ? 1 : m.kind === "count" ? c0 + 1 : c0 + e.value;
        const y = unitValue(m.kind, mt.count, mt.sum);
        mt.covariate = c1;
        mt.dirty = true;
        metricTotals.set(key, mt);
        const d = variantDelta(experimentId, m.id, a.variant, dayOf(a.firstExposureAt));
        d.covSum += c1 - c0;
        d.covSquares += c1 * c1 - c0 * c0;
        d.covProduct += (c1 - c0) * y;
      }
    }
  }

  await writeAll(trx, assignments, metricTotals, variantDeltas, exposureDeltas);
  return result;
}

async function chunked<T>(rows: T[], size: number, fn: (chunk: T[]) => Promise<unknown>): Promise<void> {
  for (let i = 0; i < rows.length; i += size) await fn(rows.slice(i, i + size));
}

async function writeAll(
  trx: Trx,
  assignments: Map<string, Assignment>,
  metricTotals: Map<string, MetricTotal>,
  variantDeltas: Map<string, VariantDelta>,
  exposureDeltas: Map<string, ExposureDelta>,
): Promise<void> {
  const a = [...assignments].filter(([, v]) => v.dirty).map(([k, v]) => ({ k: k.split("\u0000"), v }));
  await chunked(a, 5000, (c) =>
    sql`insert into assignments (experiment_id, unit_key, environment_id, variant, first_exposure_at, conflicting_exposures)
      select * from unnest(${c.map((r) => r.k[0])}::uuid[], ${c.map((r) => r.k[1])}::text[], ${c.map((r) => r.v.environmentId)}::uuid[],
        ${c.map((r) => r.v.variant)}::text[], ${c.map((r) => r.v.firstExposureAt.toISOString())}::timestamptz[], ${c.map((r) => r.v.conflicts)}::int[])
      on conflict (experiment_id, unit_key) do update set conflicting_exposures = excluded.conflicting_exposures`.execute(trx),
  );
  const m = [...metricTotals].filter(([, v]) => v.dirty).map(([k, v]) => ({ k: k.split("\u0000"), v }));
  await chunked(m, 5000, (c) =>
    sql`insert into unit_metric_totals (experiment_id, metric_id, unit_key, count, sum, covariate)
      select * from unnest(${c.map((r) => r.k[0])}::uuid[], ${c.map((r) => r.k[1])}::uuid[], ${c.map((r) => r.k[2])}::text[],
        ${c.map((r) => r.v.count)}::float8[], ${c.map((r) => r.v.sum)}::float8[], ${c.map((r) => r.v.covariate)}::float8[])
      on conflict (experiment_id, unit_key, metric_id) do update set count = excluded.count, sum = excluded.sum, covariate = excluded.covariate`.execute(trx),
  );
  const v = [...variantDeltas.values()];
  await chunked(v, 2000, (c) =>
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
  const x = [...exposureDeltas.values()];
  await chunked(x, 5000, (c) =>
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
