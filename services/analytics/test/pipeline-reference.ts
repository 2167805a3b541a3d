/**
 * An in-memory statement of the pipeline's semantics, written independently of apply.ts: replay
 * the stream in order, keep each unit's state, and compute the per-variant sums from the final
 * per-unit values. Test code only.
 */
import type { PipelineEvent } from "../pipeline/consumer.ts";

export interface RefMetric {
  id: string;
  eventName: string;
  kind: "conversion" | "count" | "sum" | "mean";
}
export interface RefExperiment {
  id: string;
  environmentId: string;
  variants: string[];
  metrics: RefMetric[];
}
export interface RefSums {
  units: number;
  sum: number;
  sum_squares: number;
  count_sum: number;
  count_squares: number;
  sum_count_product: number;
  cov_sum: number;
  cov_squares: number;
  cov_product: number;
}

const value = (kind: RefMetric["kind"], count: number, sum: number) => (kind === "conversion" ? (count > 0 ? 1 : 0) : kind === "count" ? count : sum);

/** Expected aggregates keyed `experiment/metric/variant`, and units/conflicts keyed `experiment/variant`. */
export function reference(events: readonly PipelineEvent[], experiments: readonly RefExperiment[], projectEvents: Set<string>) {
  const seen = new Set<string>();
  const lifetime = new Map<string, { count: number; sum: number }>();
  const assigned = new Map<string, { variant: string; conflicts: number; covariates: Map<string, number>; totals: Map<string, { count: number; sum: number }> }>();
  for (const e of events) {
    if (seen.has(e.id)) continue;
    seen.add(e.id);
    if (e.kind === "exposure") {
      const x = experiments.find((x) => x.id === e.experimentId && x.environmentId === e.environmentId);
      if (!x || !x.variants.includes(e.variant)) continue;
      const key = `${x.id}/${e.unitKey}`;
      const a = assigned.get(key);
      if (a) {
        if (a.variant !== e.variant) a.conflicts++;
        continue;
      }
      const covariates = new Map<string, number>();
      for (const m of x.metrics) {
        const pre = lifetime.get(`${e.environmentId}/${e.unitKey}/${m.eventName}`);
        covariates.set(m.id, value(m.kind, pre?.count ?? 0, pre?.sum ?? 0));
      }
      assigned.set(key, { variant: e.variant, conflicts: 0, covariates, totals: new Map() });
    } else if (e.kind === "track" && projectEvents.has(e.name)) {
      const lk = `${e.environmentId}/${e.unitKey}/${e.name}`;
      const t = lifetime.get(lk) ?? { count: 0, sum: 0 };
      lifetime.set(lk, { count: t.count + 1, sum: t.sum + e.value });
      for (const x of experiments) {
        const a = assigned.get(`${x.id}/${e.unitKey}`);
        if (!a || x.environmentId !== e.environmentId) continue;
        for (const m of x.metrics.filter((m) => m.eventName === e.name)) {
          const mt = a.totals.get(m.id) ?? { count: 0, sum: 0 };
          a.totals.set(m.id, { count: mt.count + 1, sum: mt.sum + e.value });
        }
      }
    }
  }
  const sums = new Map<string, RefSums>();
  const exposure = new Map<string, { units: number; conflictingUnits: number; conflictingExposures: number }>();
  for (const [key, a] of assigned) {
    const experimentId = key.slice(0, key.indexOf("/"));
    const x = experiments.find((x) => x.id === experimentId)!;
    const ek = `${experimentId}/${a.variant}`;
    const ex = exposure.get(ek) ?? { units: 0, conflictingUnits: 0, conflictingExposures: 0 };
    ex.units++;
    if (a.conflicts > 0) ex.conflictingUnits++;
    ex.conflictingExposures += a.conflicts;
    exposure.set(ek, ex);
    for (const m of x.metrics) {
      const t = a.totals.get(m.id) ?? { count: 0, sum: 0 };
      const y = value(m.kind, t.count, t.sum);
      const d = t.count;
      const c = a.covariates.get(m.id)!;
      const sk = `${experimentId}/${m.id}/${a.variant}`;
      const s = sums.get(sk) ?? { units: 0, sum: 0, sum_squares: 0, count_sum: 0, count_squares: 0, sum_count_product: 0, cov_sum: 0, cov_squares: 0, cov_product: 0 };
      s.units++;
      s.sum += y;
      s.sum_squares += y * y;
      s.count_sum += d;
      s.count_squares += d * d;
      s.sum_count_product += y * d;
      s.cov_sum += c;
      s.cov_squares += c * c;
      s.cov_product += c * y;
      sums.set(sk, s);
    }
  }
  return { sums, exposure };
}
