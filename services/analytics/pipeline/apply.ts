/**
 * Applies a batch of events to the aggregates in one transaction: the event ids go into
 * `processed_events` first (ids already there are skipped: redeliveries and re-publishes), then
 * exposures become assignments and tracked events update per-unit totals and the per-variant,
 * per-day sums. The caller acknowledges the messages only after this commits, so an event is
 * either applied together with its id, or not at all and redelivered.
 *
 * Events are applied in stream order (the batch is sorted by stream sequence): whether a tracked
 * event falls before or after a unit's first exposure is decided by that order.
 */
import { sql } from "kysely";
import type { Db, Trx } from "../store.ts";

/** A decoded event of the batch. */
export type PipelineEvent =
  | { kind: "exposure"; id: string; seq: number; environmentId: string; time: Date; experimentId: string; variant: string; unitKey: string }
  | { kind: "track"; id: string; seq: number; environmentId: string; projectId: string; time: Date; name: string; unitKey: string; value: number }
  /** Undecodable or irrelevant: only its id is recorded. */
  | { kind: "skip"; id: string; seq: number };

/** What applying a batch did. */
export interface ApplyResult {
  applied: number;
  duplicates: number;
  assignments: number;
  conflicts: number;
}

type MetricKindName = "conversion" | "count" | "sum" | "mean";

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
export async function applyBatch(trx: Trx, input: readonly PipelineEvent[]): Promise<ApplyResult> {
  const result: ApplyResult = { applied: 0, duplicates: 0, assignments: 0, conflicts: 0 };
  if (input.length === 0) return result;
  // Dedupe inside the batch, then against everything applied before (same transaction).
  const byId = new Map<string, PipelineEvent>();
  for (const e of [...input].sort((a, b) => a.seq - b.seq)) if (!byId.has(e.id)) byId.set(e.id, e);
  const ids = [...byId.keys()];
  const fresh = new Set<string>();
  for (let i = 0; i < ids.length; i += 5000) {
    const rows = await sql<{ event_id: string }>`
      insert into processed_events (event_id) select unnest(${ids.slice(i, i + 5000)}::text[])
      on conflict do nothing returning event_id`.execute(trx);
    for (const r of rows.rows) fresh.add(r.event_id);
  }
  result.duplicates = input.length - fresh.size;
  const events = [...byId.values()].filter((e) => fresh.has(e.id) && e.kind !== "skip") as Exclude<PipelineEvent, { kind: "skip" }>[];
  result.applied = fresh.size;
  if (events.length === 0) return result;

  // Experiments named by exposures, and metrics of the projects tracked events belong to.
  const exposureExperimentIds = new Set(events.filter((e) => e.kind === "exposure").map((e) => e.experimentId));
  const tracks = events.filter((e) => e.kind === "track");
  const projectIds = [...new Set(tracks.map((e) => e.projectId))];
  const metricEvents = new Set<string>(); // project\0event_name
  if (projectIds.length) {
    const rows = await trx.selectFrom("metrics").select(["project_id", "event_name"]).distinct().where("project_id", "in", projectIds).execute();
    for (const r of rows) metricEvents.add(k2(r.project_id, r.event_name));
  }

  // Units involved, per environment.
  const units = new Map<string, Set<string>>();
  const addUnit = (env: string, unit: string) => {
    let s = units.get(env);
    if (!s) units.set(env, (s = new Set()));
    s.add(unit);
  };
  for (const e of events) if (e.kind === "exposure" || metricEvents.has(k2(e.projectId, e.name))) addUnit(e.environmentId, e.unitKey);

  // Existing assignments of those units.
  const assignments = new Map<string, { variant: string; conflicts: number; isNew: boolean; dirty: boolean; environmentId: string; firstExposureAt: Date }>();
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
        .where("unit_key", "in", list.slice(i, i + 5000))
        .execute();
      for (const r of rows) {
        assignments.set(k2(r.experiment_id, r.unit_key), { variant: r.variant, conflicts: r.conflicting_exposures, isNew: false, dirty: false, environmentId: env, firstExposureAt: r.first_exposure_at });
        linkUnit(env, r.unit_key, r.experiment_id);
        exposureExperimentIds.add(r.experiment_id);
      }
    }
  }

  // Definitions of every experiment involved.
  const experiments = new Map<string, ExperimentDef>();
  const experimentIds = [...exposureExperimentIds].filter((id) => /^[0-9a-f-]{36}$/i.test(id));
  if (experimentIds.length) {
    const rows = await trx.selectFrom("experiments").select(["id", "environment_id", "variants", "stop_time", "metric_ids"]).where("id", "in", experimentIds).execute();
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
      experiments.set(r.id, { id: r.id, environmentId: r.environment_id, variants: new Set(r.variants.map((v) => v.variant)), stopTime: r.stop_time, metricsByEvent, metrics });
    }
  }

  // Lifetime totals of the units for metric events (for covariates), and their metric totals.
  const unitTotals = new Map<string, { count: number; sum: number; dirty: boolean }>(); // env\0unit\0event
  const metricTotals = new Map<string, { count: number; sum: number; covariate: number; dirty: boolean }>(); // exp\0metric\0unit
  for (const [env, set] of units) {
    const list = [...set];
    for (let i = 0; i < list.length; i += 5000) {
      const rows = await trx.selectFrom("unit_event_totals").select(["unit_key", "event_name", "count", "sum"]).where("environment_id", "=", env).where("unit_key", "in", list.slice(i, i + 5000)).execute();
      for (const r of rows) unitTotals.set(k3(env, r.unit_key, r.event_name), { count: r.count, sum: r.sum, dirty: false });
    }
  }
  const assignedPairs = [...assignments.keys()].map((k) => k.split("\u0000"));
  for (let i = 0; i < assignedPairs.length; i += 5000) {
    const slice = assignedPairs.slice(i, i + 5000);
    const rows = await sql<{ experiment_id: string; metric_id: string; unit_key: string; count: number; sum: number; covariate: number }>`
      select t.experiment_id, t.metric_id, t.unit_key, t.count, t.sum, t.covariate
      from unit_metric_totals t
      join unnest(${slice.map((p) => p[0])}::uuid[], ${slice.map((p) => p[1])}::text[]) as u(experiment_id, unit_key)
        on t.experiment_id = u.experiment_id and t.unit_key = u.unit_key`.execute(trx);
    for (const r of rows.rows) metricTotals.set(k3(r.experiment_id, r.metric_id, r.unit_key), { count: r.count, sum: r.sum, covariate: r.covariate, dirty: false });
  }

  const variantDeltas = new Map<string, VariantDelta>();
  const variantDelta = (experimentId: string, metricId: string, variant: string, day: string): VariantDelta => {
    const key = `${experimentId}\u0000${metricId}\u0000${variant}\u0000${day}`;
    let d = variantDeltas.get(key);
    if (!d) {
      d = { experimentId, metricId, variant, day, units: 0, sum: 0, sumSquares: 0, countSum: 0, countSquares: 0, sumCountProduct: 0, covSum: 0, covSquares: 0, covProduct: 0 };
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

  for (const e of events) {
    const day = dayOf(e.time);
    if (e.kind === "exposure") {
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
      for (const m of x.metrics) {
        // The covariate: what the unit did before its first exposure.
        const pre = unitTotals.get(k3(e.environmentId, e.unitKey, m.eventName));
        const covariate = unitValue(m.kind, pre?.count ?? 0, pre?.sum ?? 0);
        metricTotals.set(k3(x.id, m.id, e.unitKey), { count: 0, sum: 0, covariate, dirty: true });
        const d = variantDelta(x.id, m.id, e.variant, day);
        d.units++;
        d.covSum += covariate;
        d.covSquares += covariate * covariate;
      }
      continue;
    }
    if (!metricEvents.has(k2(e.projectId, e.name))) continue;
    const tk = k3(e.environmentId, e.unitKey, e.name);
    const t = unitTotals.get(tk) ?? { count: 0, sum: 0, dirty: true };
    t.count += 1;
    t.sum += e.value;
    t.dirty = true;
    unitTotals.set(tk, t);
    for (const experimentId of unitExperiments.get(k2(e.environmentId, e.unitKey)) ?? []) {
      const x = experiments.get(experimentId);
      const ms = x?.metricsByEvent.get(e.name);
      if (!x || !ms || !active(x, e.time)) continue;
      const a = assignments.get(k2(experimentId, e.unitKey))!;
      for (const m of ms) {
        const mt = metricTotals.get(k3(experimentId, m.id, e.unitKey)) ?? { count: 0, sum: 0, covariate: 0, dirty: true };
        const y0 = unitValue(m.kind, mt.count, mt.sum);
        const d0 = mt.count;
        mt.count += 1;
        mt.sum += e.value;
        mt.dirty = true;
        metricTotals.set(k3(experimentId, m.id, e.unitKey), mt);
        const y1 = unitValue(m.kind, mt.count, mt.sum);
        const d1 = mt.count;
        const d = variantDelta(experimentId, m.id, a.variant, day);
        d.sum += y1 - y0;
        d.sumSquares += y1 * y1 - y0 * y0;
        d.countSum += d1 - d0;
        d.countSquares += d1 * d1 - d0 * d0;
        d.sumCountProduct += y1 * d1 - y0 * d0;
        d.covProduct += mt.covariate * (y1 - y0);
      }
    }
  }

  await writeAll(trx, assignments, unitTotals, metricTotals, variantDeltas, exposureDeltas);
  return result;
}

async function chunked<T>(rows: T[], size: number, fn: (chunk: T[]) => Promise<unknown>): Promise<void> {
  for (let i = 0; i < rows.length; i += size) await fn(rows.slice(i, i + size));
}

async function writeAll(
  trx: Trx,
  assignments: Map<string, { variant: string; conflicts: number; isNew: boolean; dirty: boolean; environmentId: string; firstExposureAt: Date }>,
  unitTotals: Map<string, { count: number; sum: number; dirty: boolean }>,
  metricTotals: Map<string, { count: number; sum: number; covariate: number; dirty: boolean }>,
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
  const u = [...unitTotals].filter(([, v]) => v.dirty).map(([k, v]) => ({ k: k.split("\u0000"), v }));
  await chunked(u, 5000, (c) =>
    sql`insert into unit_event_totals (environment_id, unit_key, event_name, count, sum)
      select * from unnest(${c.map((r) => r.k[0])}::uuid[], ${c.map((r) => r.k[1])}::text[], ${c.map((r) => r.k[2])}::text[],
        ${c.map((r) => r.v.count)}::float8[], ${c.map((r) => r.v.sum)}::float8[])
      on conflict (environment_id, unit_key, event_name) do update set count = excluded.count, sum = excluded.sum`.execute(trx),
  );
  const m = [...metricTotals].filter(([, v]) => v.dirty).map(([k, v]) => ({ k: k.split("\u0000"), v }));
  await chunked(m, 5000, (c) =>
    sql`insert into unit_metric_totals (experiment_id, metric_id, unit_key, count, sum, covariate)
      select * from unnest(${c.map((r) => r.k[0])}::uuid[], ${c.map((r) => r.k[1])}::uuid[], ${c.map((r) => r.k[2])}::text[],
        ${c.map((r) => r.v.count)}::float8[], ${c.map((r) => r.v.sum)}::float8[], ${c.map((r) => r.v.covariate)}::float8[])
      on conflict (experiment_id, unit_key, metric_id) do update set count = excluded.count, sum = excluded.sum`.execute(trx),
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
        conflicting_units = t.conflicting_units + excluded.conflicting_units, conflicting_exposures = t.conflicting_exposures + excluded.conflicting_exposures`.execute(trx),
  );
}

/** Deletes dedupe keys older than the stream can redeliver (its max age plus a margin). */
export async function pruneProcessed(db: Db, olderThanMs: number): Promise<number> {
  const r = await db.deleteFrom("processed_events").where(sql<boolean>`processed_at < now() - make_interval(secs => ${olderThanMs / 1000})`).executeTakeFirst();
  return Number(r.numDeletedRows);
}
