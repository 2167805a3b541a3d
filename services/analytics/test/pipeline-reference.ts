/**
 * An in-memory statement of the pipeline's semantics, written independently of apply.ts: dedupe
 * by (environment, event id); the first exposure in stream order fixes a unit's variant and start
 * time T; each tracked event of the unit counts toward the metric when its time is at least
 * T − tolerance (and before the experiment's stop), toward the pre-period covariate otherwise —
 * whatever order the events arrived in. Test code only.
 */
import type { VariantSums } from "../schema.ts";
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
/** The same columns the pipeline keeps, computed by a replay of the events. */
export type RefSums = VariantSums;

const value = (kind: RefMetric["kind"], count: number, sum: number) => (kind === "conversion" ? (count > 0 ? 1 : 0) : kind === "count" ? count : sum);

/** Expected aggregates keyed `experiment/metric/variant`, and units/conflicts keyed `experiment/variant`. */
export function reference(events: readonly PipelineEvent[], experiments: readonly RefExperiment[], projectEvents: Set<string>, toleranceMs = 1000) {
  const seen = new Set<string>();
  const tracks: Extract<PipelineEvent, { kind: "track" }>[] = [];
  const assigned = new Map<string, { x: RefExperiment; unitKey: string; variant: string; time: number; conflicts: number }>();
  for (const e of events) {
    const id = `${e.environmentId}/${e.id}`;
    if (seen.has(id)) continue;
    seen.add(id);
    if (e.kind === "exposure") {
      const x = experiments.find((x) => x.id === e.experimentId && x.environmentId === e.environmentId);
      if (!x || !x.variants.includes(e.variant)) continue;
      const key = `${x.id}/${e.unitKey}`;
      const a = assigned.get(key);
      if (a) {
        if (a.variant !== e.variant) a.conflicts++;
      } else {
        assigned.set(key, { x, unitKey: e.unitKey, variant: e.variant, time: e.time.getTime(), conflicts: 0 });
      }
    } else if (e.kind === "track" && projectEvents.has(e.name)) {
      tracks.push(e);
    }
  }
  const sums = new Map<string, RefSums>();
  const exposure = new Map<string, { units: number; conflictingUnits: number; conflictingExposures: number }>();
  for (const a of assigned.values()) {
    const ek = `${a.x.id}/${a.variant}`;
    const ex = exposure.get(ek) ?? { units: 0, conflictingUnits: 0, conflictingExposures: 0 };
    ex.units++;
    if (a.conflicts > 0) ex.conflictingUnits++;
    ex.conflictingExposures += a.conflicts;
    exposure.set(ek, ex);
    const mine = tracks.filter((t) => t.environmentId === a.x.environmentId && t.unitKey === a.unitKey);
    for (const m of a.x.metrics) {
      const of = mine.filter((t) => t.name === m.eventName);
      const post = of.filter((t) => t.time.getTime() >= a.time - toleranceMs);
      const pre = of.filter((t) => t.time.getTime() < a.time - toleranceMs);
      const y = value(
        m.kind,
        post.length,
        post.reduce((s, t) => s + t.value, 0),
      );
      const d = post.length;
      const c = value(
        m.kind,
        pre.length,
        pre.reduce((s, t) => s + t.value, 0),
      );
      const sk = `${a.x.id}/${m.id}/${a.variant}`;
      const s = sums.get(sk) ?? {
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
