/**
 * Results-time metrics: the kinds and settings the pipeline's per-day sums cannot express (ratio
 * across events, quantile, retention, a window after exposure, caps) are computed from the kept
 * events (`unit_events`) and the first exposures (`assignments`) as they stood at a time `asOf`,
 * with set-based SQL: one row per unit, then sums per arm.
 *
 * Events split at the first exposure T like the pipeline does: at or after T − skew tolerance
 * counts toward the metric (when within the window, if any), before it toward the pre-period
 * (CUPED's covariate). Events after the experiment stopped do not count.
 */
import { type RawBuilder, sql } from "kysely";
import { DEFAULT_SKEW_TOLERANCE_MS } from "../pipeline/apply.ts";
import type { ExperimentRow, MetricRow } from "../schema.ts";
import type { Estimate, MeanSums, MetricInput, RatioSums } from "../stats/index.ts";
import type { Db } from "../store.ts";
import { arraySource, quantileEstimate, type QuantileSource } from "./quantile.ts";
import { ratioCuped, type RatioCupedSums } from "./ratio-cuped.ts";

/** A metric's input to the analysis (key, direction and family are the caller's), and what was left out. */
export interface TypedMetric {
  input: MetricInput;
  /** Retention: assigned units whose retention window had not ended at `asOf`, left out. */
  unitsWaiting: number;
}

const DAY_MS = 86_400_000;

/** Computes `m` for the experiment's arms (control first) as of `asOf`. */
export async function loadTypedMetric(db: Db, x: ExperimentRow, m: MetricRow, arms: readonly string[], asOf: Date): Promise<TypedMetric> {
  const cut = x.stop_time && x.stop_time < asOf ? x.stop_time : asOf;
  if (m.kind === "quantile") {
    const estimates: Estimate[] = [];
    for (const v of arms) estimates.push(await quantileEstimate(await quantileSource(db, x, m, v, cut), m.quantile));
    return { input: { key: m.key, kind: "estimate", variants: estimates }, unitsWaiting: 0 };
  }
  const rows = await perArmSums(db, x, m, cut);
  const byArm = new Map(rows.map((r) => [r.variant, r]));
  const s = arms.map((v) => {
    const r = byArm.get(v);
    return Object.fromEntries(SUMS.map((k) => [k, Number(r?.[k] ?? 0)])) as unknown as SumsRow;
  });
  let unitsWaiting = 0;
  if (m.kind === "retention") {
    const waiting = await sql<{ n: string }>`select count(*) as n from assignments
      where experiment_id = ${x.id} and first_exposure_at < ${cut} and first_exposure_at + ${m.retention_end_days * DAY_MS} * interval '1 millisecond' > ${cut}`.execute(
      db,
    );
    unitsWaiting = Number(waiting.rows[0]?.n ?? 0);
  }
  if (m.kind === "mean" || m.kind === "ratio") {
    const sums: RatioCupedSums[] = s.map((r) => ({
      n: r.n,
      numerator: { sum: r.y, sumSquares: r.yy },
      denominator: { sum: r.d, sumSquares: r.dd },
      sumProduct: r.yd,
      pre: {
        numerator: { sum: r.x, sumSquares: r.xx },
        denominator: { sum: r.xd, sumSquares: r.xdxd },
        sumProduct: r.xxd,
        cross: { uu: r.yx, ud: r.yxd, du: r.dx, dd: r.dxd },
      },
    }));
    const cuped = ratioCuped(sums);
    const input: MetricInput = cuped
      ? { key: m.key, kind: "estimate", variants: cuped.adjusted, cuped: { theta: cuped.theta, unadjusted: cuped.unadjusted } }
      : {
          key: m.key,
          kind: "ratio",
          variants: sums.map(({ n, numerator, denominator, sumProduct }): RatioSums => ({ n, numerator, denominator, sumProduct })),
        };
    return { input, unitsWaiting };
  }
  // CUPED only when the pre-period value varies within arms (else θ is undefined); none for retention.
  const hasCovariate = m.kind !== "retention" && s.some((r) => r.n > 1 && r.xx - (r.x * r.x) / r.n > 1e-9 * Math.max(1, r.xx));
  const variants = s.map((r): MeanSums => ({
    n: r.n,
    sum: r.y,
    sumSquares: r.yy,
    ...(hasCovariate ? { covariate: { sum: r.x, sumSquares: r.xx, sumProduct: r.yx } } : {}),
  }));
  const kind = m.kind === "retention" ? "conversion" : (m.kind as "conversion" | "count" | "sum");
  return { input: { key: m.key, kind, variants }, unitsWaiting };
}

/** Per arm: n units, Σ of y, d (denominator), x, xd (their pre-period values) and their products. */
interface SumsRow {
  n: number;
  y: number;
  yy: number;
  d: number;
  dd: number;
  yd: number;
  x: number;
  xx: number;
  yx: number;
  xd: number;
  xdxd: number;
  xxd: number;
  yxd: number;
  dx: number;
  dxd: number;
}

const SUMS = ["n", "y", "yy", "d", "dd", "yd", "x", "xx", "yx", "xd", "xdxd", "xxd", "yxd", "dx", "dxd"] as const;

/** A per-event value of an aggregation: 1 to count events, the value to sum them. */
const term = (aggregation: string): RawBuilder<number> => (aggregation === "count" ? sql`1.0` : sql`ev.value`);

async function perArmSums(db: Db, x: ExperimentRow, m: MetricRow, cut: Date) {
  const numerator = m.event_name;
  const denominator = m.kind === "ratio" ? m.denominator_event_name : m.event_name;
  // Per event: which total it feeds. Mean is the sum of values over the number of events.
  const num =
    m.kind === "ratio"
      ? term(m.numerator_aggregation || "sum")
      : m.kind === "count" || m.kind === "conversion" || m.kind === "retention"
        ? sql`1.0`
        : sql`ev.value`;
  const den = m.kind === "ratio" ? term(m.denominator_aggregation || "count") : sql`1.0`;
  const retention = m.kind === "retention";
  const windowMs = m.window_seconds * 1000;
  const inWindow = retention
    ? sql`ev.time >= a.t0 + ${m.retention_start_days * DAY_MS} * interval '1 millisecond' and ev.time < a.t0 + ${m.retention_end_days * DAY_MS} * interval '1 millisecond'`
    : windowMs > 0
      ? sql`ev.post and ev.time < a.t0 + ${windowMs} * interval '1 millisecond'`
      : sql`ev.post`;
  const eligible = retention ? sql`and first_exposure_at + ${m.retention_end_days * DAY_MS} * interval '1 millisecond' <= ${cut}` : sql``;
  // Conversions (and retention) are 0/1 per unit; the rest are totals.
  const binary = m.kind === "conversion" || retention;
  const y = binary ? sql`(u.y_raw > 0)::int::float8` : sql`u.y_raw`;
  const xv = binary ? sql`(u.x_raw > 0)::int::float8` : sql`u.x_raw`;
  // Caps lower the per-unit total (the numerator) and its pre-period value alike.
  const cap =
    m.cap_value > 0
      ? sql`${m.cap_value}::float8`
      : m.cap_quantile > 0
        ? sql`(select percentile_cont(${m.cap_quantile}::float8) within group (order by u.y_raw) from u where u.has_event)`
        : sql`null::float8`;
  const rows = await sql<Record<keyof SumsRow | "variant", string>>`
    with a as (
      select unit_key, environment_id, variant, first_exposure_at as t0 from assignments
      where experiment_id = ${x.id} and first_exposure_at < ${cut} ${eligible}
    ), ev as (
      select a.unit_key, e.event_name, e.value, e.time,
        e.time >= a.t0 - ${DEFAULT_SKEW_TOLERANCE_MS} * interval '1 millisecond' as post
      from a join unit_events e on e.environment_id = a.environment_id and e.unit_key = a.unit_key
      where e.event_name in (${numerator}, ${denominator}) and e.time < ${cut}
    ), u as (
      select a.variant, a.unit_key,
        coalesce(sum(${num}) filter (where ev.event_name = ${numerator} and ${inWindow}), 0)::float8 as y_raw,
        coalesce(sum(${den}) filter (where ev.event_name = ${denominator} and ${inWindow}), 0)::float8 as d,
        coalesce(sum(${num}) filter (where ev.event_name = ${numerator} and not ev.post), 0)::float8 as x_raw,
        coalesce(sum(${den}) filter (where ev.event_name = ${denominator} and not ev.post), 0)::float8 as xd,
        count(*) filter (where ev.event_name = ${numerator} and ${inWindow}) > 0 as has_event
      from a left join ev on ev.unit_key = a.unit_key
      group by a.variant, a.unit_key
    ), c as (select ${cap} as cap), v as (
      select u.variant, least(${y}, coalesce(c.cap, 'infinity')) as y, u.d, least(${xv}, coalesce(c.cap, 'infinity')) as x, u.xd
      from u cross join c
    )
    select variant, count(*)::float8 as n, sum(y) as y, sum(y * y) as yy, sum(d) as d, sum(d * d) as dd, sum(y * d) as yd,
      sum(x) as x, sum(x * x) as xx, sum(y * x) as yx, sum(xd) as xd, sum(xd * xd) as xdxd, sum(x * xd) as xxd,
      sum(y * xd) as yxd, sum(d * x) as dx, sum(d * xd) as dxd
    from v group by variant`.execute(db);
  return rows.rows;
}

/**
 * One arm's post-exposure events (within the window) of a quantile metric, read in one query: the
 * estimator asks for several quantiles and per-unit counts, which cost a pass over the events each.
 */
async function quantileSource(db: Db, x: ExperimentRow, m: MetricRow, variant: string, cut: Date): Promise<QuantileSource> {
  const windowMs = m.window_seconds * 1000;
  const rows = await sql<{ unit_key: string; value: number }>`
    select a.unit_key, e.value from assignments a
    join unit_events e on e.environment_id = a.environment_id and e.unit_key = a.unit_key
    where a.experiment_id = ${x.id} and a.variant = ${variant} and a.first_exposure_at < ${cut}
      and e.event_name = ${m.event_name} and e.time < ${cut}
      and e.time >= a.first_exposure_at - ${DEFAULT_SKEW_TOLERANCE_MS} * interval '1 millisecond'
      ${windowMs > 0 ? sql`and e.time < a.first_exposure_at + ${windowMs} * interval '1 millisecond'` : sql``}`.execute(db);
  const units = new Map<string, number>();
  return arraySource(rows.rows.map((r) => ({ unit: units.get(r.unit_key) ?? (units.set(r.unit_key, units.size), units.size - 1), value: Number(r.value) })));
}
