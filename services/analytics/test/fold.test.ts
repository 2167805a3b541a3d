/**
 * The pipeline's pure fold, without Postgres: seeded random streams (exposures and tracked events
 * over several days, shuffled against time, duplicated, conflicting exposures, events of units
 * never exposed) cut into batches; between batches the state the SQL phases would keep is held
 * here in memory. The accumulated aggregates must equal test/pipeline-reference.ts's replay —
 * the same reference the crash-loop exactly-once test checks the real pipeline against.
 */
import { describe, expect, it } from "vitest";
import {
  type Assignment,
  type ExperimentDef,
  type Exposure,
  fold,
  type HistoryRow,
  key,
  type LoadedState,
  type MetricTotal,
  type PipelineEvent,
  planAssignments,
  type Track,
} from "../pipeline/fold.ts";
import { reference, type RefExperiment, type RefSums } from "./pipeline-reference.ts";

const ENV = "00000000-0000-4000-8000-000000000001";
const PROJECT = "p";
const DAY = 86_400_000;
const T0 = Date.UTC(2026, 11, 1);

function random(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = Math.imul(a ^ (a >>> 15), a | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const experiments: RefExperiment[] = [
  {
    id: "x1",
    environmentId: ENV,
    variants: ["control", "treatment"],
    metrics: [
      { id: "m-conv", eventName: "purchase", kind: "conversion" },
      { id: "m-rev", eventName: "purchase", kind: "sum" },
      { id: "m-clicks", eventName: "click", kind: "count" },
    ],
  },
  { id: "x2", environmentId: ENV, variants: ["a", "b", "c"], metrics: [{ id: "m-load", eventName: "load", kind: "mean" }] },
];
const defs = new Map<string, ExperimentDef>(
  experiments.map((x) => {
    const metricsByEvent = new Map<string, { id: string; kind: RefExperiment["metrics"][number]["kind"] }[]>();
    for (const m of x.metrics) metricsByEvent.set(m.eventName, [...(metricsByEvent.get(m.eventName) ?? []), { id: m.id, kind: m.kind }]);
    return [x.id, { id: x.id, environmentId: x.environmentId, variants: new Set(x.variants), stopTime: null, metricsByEvent, metrics: x.metrics }];
  }),
);
const metricEvents = new Set(["purchase", "click", "load"]);

/** A stream: per unit an exposure (sometimes two, sometimes conflicting) and events before and after it. */
function stream(seed: number): PipelineEvent[] {
  const r = random(seed);
  const events: PipelineEvent[] = [];
  let n = 0;
  const id = () => `e${n++}`;
  for (let u = 0; u < 120; u++) {
    const unitKey = `u${u}`;
    const x = experiments[u % 2];
    const exposedAt = T0 + Math.floor(r() * 3 * DAY);
    const variant = x.variants[Math.floor(r() * x.variants.length)];
    if (r() > 0.1) {
      events.push({ kind: "exposure", id: id(), seq: 0, environmentId: ENV, time: new Date(exposedAt), experimentId: x.id, variant, unitKey });
      // Some units are exposed again, up to three times, possibly to other variants (conflicts).
      const again = r() < 0.2 ? 1 + Math.floor(r() * 3) : 0;
      for (let k = 1; k <= again; k++) {
        const other = x.variants[Math.floor(r() * x.variants.length)];
        events.push({
          kind: "exposure",
          id: id(),
          seq: 0,
          environmentId: ENV,
          time: new Date(exposedAt + k * 5_000),
          experimentId: x.id,
          variant: other,
          unitKey,
        });
      }
    }
    const count = Math.floor(r() * 6);
    for (let k = 0; k < count; k++) {
      // Before the exposure (covariate), within the tolerance, or days after it.
      const offset = r() < 0.3 ? -Math.floor(r() * DAY) : r() < 0.1 ? -Math.floor(r() * 900) : Math.floor(r() * 2 * DAY);
      const name = x.id === "x1" ? (r() < 0.5 ? "purchase" : "click") : r() < 0.8 ? "load" : "ignored";
      events.push({
        kind: "track",
        id: id(),
        seq: 0,
        environmentId: ENV,
        projectId: PROJECT,
        time: new Date(exposedAt + offset),
        name,
        unitKey,
        value: Math.round(r() * 100),
      });
    }
  }
  // Arrival order differs from time order; some events arrive twice (a redelivery, a re-publish).
  for (let i = events.length - 1; i > 0; i--) {
    const j = Math.floor(r() * (i + 1));
    [events[i], events[j]] = [events[j], events[i]];
  }
  for (let i = 0; i < events.length; i += 7) events.splice(i + 3, 0, { ...events[i] });
  return events.map((e, i) => ({ ...e, seq: i + 1 }));
}

/** What Postgres would hold between batches, and the SQL phases of apply.ts over it. */
class Store {
  processed = new Set<string>();
  unitEvents: Track[] = [];
  assignments = new Map<string, Assignment>();
  totals = new Map<string, MetricTotal>();
  sums = new Map<string, RefSums>();
  exposure = new Map<string, { units: number; conflictingUnits: number; conflictingExposures: number }>();

  apply(batch: PipelineEvent[], toleranceMs: number): void {
    const fresh = batch.filter((e) => {
      const k = key.event(e.environmentId, e.id);
      if (this.processed.has(k)) return false;
      this.processed.add(k);
      return e.kind !== "skip";
    });
    const tracks = fresh.filter((e): e is Track => e.kind === "track" && metricEvents.has(e.name));
    this.unitEvents.push(...tracks);
    const exposures = fresh.filter((e): e is Exposure => e.kind === "exposure");
    // Copies: the fold updates the state it is given, as apply.ts's freshly loaded maps.
    const state: LoadedState = {
      experiments: defs,
      assignments: new Map([...this.assignments].map(([k, a]) => [k, { ...a, dirty: false }])),
      totals: new Map([...this.totals].map(([k, t]) => [k, { ...t, dirty: false }])),
    };
    const planned = planAssignments(exposures, state);
    const history: HistoryRow[][] = planned.assigned.map((a) => {
      const boundary = a.time.getTime() - toleranceMs;
      const rows = new Map<string, HistoryRow>();
      for (const e of this.unitEvents) {
        if (e.environmentId !== a.environmentId || e.unitKey !== a.unitKey) continue;
        const post = e.time.getTime() >= boundary;
        const day = post ? e.time.toISOString().slice(0, 10) : null;
        const k = `${e.name}/${post}/${day}`;
        const row = rows.get(k) ?? { eventName: e.name, post, day, count: 0, sum: 0 };
        row.count++;
        row.sum += e.value;
        rows.set(k, row);
      }
      return [...rows.values()];
    });
    const out = fold({ state, planned, history, tracks, toleranceMs });
    for (const a of out.assignments) this.assignments.set(key.assignment(a.experimentId, a.unitKey), { ...a, dirty: false });
    for (const t of out.totals) this.totals.set(key.total(t.experimentId, t.metricId, t.unitKey), { ...t, dirty: false });
    for (const d of out.variantDeltas) {
      const k = `${d.experimentId}/${d.metricId}/${d.variant}`;
      const s = this.sums.get(k) ?? {
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
      s.units += d.units;
      s.sum += d.sum;
      s.sum_squares += d.sumSquares;
      s.count_sum += d.countSum;
      s.count_squares += d.countSquares;
      s.sum_count_product += d.sumCountProduct;
      s.cov_sum += d.covSum;
      s.cov_squares += d.covSquares;
      s.cov_product += d.covProduct;
      this.sums.set(k, s);
    }
    for (const d of out.exposureDeltas) {
      const k = `${d.experimentId}/${d.variant}`;
      const x = this.exposure.get(k) ?? { units: 0, conflictingUnits: 0, conflictingExposures: 0 };
      x.units += d.units;
      x.conflictingUnits += d.conflictingUnits;
      x.conflictingExposures += d.conflictingExposures;
      this.exposure.set(k, x);
    }
  }
}

const close = (actual: Map<string, RefSums>, expected: Map<string, RefSums>) => {
  expect([...actual.keys()].sort()).toEqual([...expected.keys()].sort());
  for (const [k, e] of expected) for (const [col, v] of Object.entries(e)) expect(actual.get(k)![col as keyof RefSums], `${k} ${col}`).toBeCloseTo(v, 6);
};

describe("the pipeline's fold", () => {
  for (const [seed, batchSize] of [
    [1, 1],
    [2, 7],
    [3, 50],
    [4, 10_000],
  ] as const) {
    it(`matches the reference over a shuffled, duplicated stream (seed ${seed}, batches of ${batchSize})`, () => {
      const events = stream(seed);
      const store = new Store();
      for (let i = 0; i < events.length; i += batchSize) store.apply(events.slice(i, i + batchSize), 1000);
      const expected = reference(events, experiments, metricEvents, 1000);
      close(store.sums, expected.sums);
      expect(Object.fromEntries(store.exposure)).toEqual(Object.fromEntries(expected.exposure));
      expect(store.sums.size).toBeGreaterThan(0);
      // The stream exercises what it is meant to: units with several conflicting exposures.
      expect([...store.exposure.values()].some((x) => x.conflictingExposures > x.conflictingUnits)).toBe(true);
    });
  }

  it("ignores exposures of unknown experiments, other environments, unknown variants and stopped experiments", () => {
    const x = { ...defs.get("x1")!, stopTime: new Date(T0) };
    const state: LoadedState = { experiments: new Map([["x1", x]]), assignments: new Map(), totals: new Map() };
    const at = (t: number, over: Partial<Exposure>): Exposure => ({
      kind: "exposure",
      id: "i",
      seq: 1,
      environmentId: ENV,
      time: new Date(t),
      experimentId: "x1",
      variant: "control",
      unitKey: "u",
      ...over,
    });
    const planned = planAssignments(
      [
        at(T0 - 1, { experimentId: "nope" }),
        at(T0 - 1, { environmentId: "other" }),
        at(T0 - 1, { variant: "zzz" }),
        at(T0 + 1, {}),
        at(T0 - 1, { unitKey: "ok" }),
      ],
      state,
    );
    expect(planned.assigned.map((a) => a.unitKey)).toEqual(["ok"]);
  });
});
