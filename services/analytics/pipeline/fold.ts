/**
 * The pure heart of a batch: what the new events do to the aggregates, given what the batch read
 * from Postgres. No I/O here — `apply.ts` reads, calls these, and writes — so the invariants
 * (first exposure wins, the split at T − tolerance, CUPED covariates) are unit-tested without a
 * database (test/fold.test.ts) against the reference of test/pipeline-reference.ts.
 *
 * Keys are built only by {@link key}; every value carries its own identity fields, so nothing
 * ever splits a key back into its parts.
 */
/** A decoded event of the batch. */
export type PipelineEvent =
  | {
      kind: "exposure";
      id: string;
      seq: number;
      environmentId: string;
      time: Date;
      experimentId: string;
      variant: string;
      unitKey: string;
      /** Breakdown dimension values (absent: none). */
      dimensions?: Readonly<Record<string, string>>;
    }
  | { kind: "track"; id: string; seq: number; environmentId: string; projectId: string; time: Date; name: string; unitKey: string; value: number }
  /** Undecodable or irrelevant: only its id is recorded ("" when its environment is unknown). */
  | { kind: "skip"; id: string; seq: number; environmentId: string };
export type MetricKindName = "conversion" | "count" | "sum" | "mean";
export type Exposure = Extract<PipelineEvent, { kind: "exposure" }>;
export type Track = Extract<PipelineEvent, { kind: "track" }>;

/** The composite keys of a batch's maps. */
export const key = {
  event: (environmentId: string, eventId: string) => `${environmentId}\u0000${eventId}`,
  unit: (environmentId: string, unitKey: string) => `${environmentId}\u0000${unitKey}`,
  assignment: (experimentId: string, unitKey: string) => `${experimentId}\u0000${unitKey}`,
  total: (experimentId: string, metricId: string, unitKey: string) => `${experimentId}\u0000${metricId}\u0000${unitKey}`,
  variantDay: (experimentId: string, metricId: string, variant: string, day: string) => `${experimentId}\u0000${metricId}\u0000${variant}\u0000${day}`,
  exposureDay: (experimentId: string, variant: string, day: string) => `${experimentId}\u0000${variant}\u0000${day}`,
};

/** A unit's assignment to an experiment's variant. */
export interface Assignment {
  experimentId: string;
  unitKey: string;
  environmentId: string;
  variant: string;
  firstExposureAt: Date;
  conflicts: number;
  /** Breakdown dimension values of the first exposure (only new assignments write them). */
  dimensions?: Readonly<Record<string, string>>;
  /** Changed by this batch: to be written. */
  dirty: boolean;
}

/** A unit's running total of one metric: after the exposure (count, sum) and before it (covariate). */
export interface MetricTotal {
  experimentId: string;
  metricId: string;
  unitKey: string;
  count: number;
  sum: number;
  covariate: number;
  dirty: boolean;
}

export interface ExperimentDef {
  id: string;
  environmentId: string;
  variants: Set<string>;
  stopTime: Date | null;
  /** Metrics of the experiment by event name. */
  metricsByEvent: Map<string, { id: string; kind: MetricKindName }[]>;
  metrics: { id: string; eventName: string; kind: MetricKindName }[];
}

/** Additions to one row of `variant_daily`. */
export interface VariantDelta {
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

/** Additions to one row of `exposure_daily`. */
export interface ExposureDelta {
  experimentId: string;
  variant: string;
  day: string;
  units: number;
  conflictingUnits: number;
  conflictingExposures: number;
}

/** A unit's stored events of one name, before (`post` false) or after the boundary, per day after it. */
export interface HistoryRow {
  eventName: string;
  post: boolean;
  /** The UTC day of post-boundary events; null before. */
  day: string | null;
  count: number;
  sum: number;
}

/** What the batch read: experiments involved, existing assignments of its units, their totals. */
export interface LoadedState {
  experiments: Map<string, ExperimentDef>;
  /** By {@link key.assignment}. */
  assignments: Map<string, Assignment>;
  /** By {@link key.total}. */
  totals: Map<string, MetricTotal>;
}

/** An assignment this batch makes: the first valid exposure of a unit not yet assigned. */
export interface NewAssignment {
  experiment: ExperimentDef;
  unitKey: string;
  environmentId: string;
  variant: string;
  time: Date;
  dimensions?: Readonly<Record<string, string>>;
}

/** A later exposure naming another variant than the unit's assignment. */
export interface Conflict {
  experimentId: string;
  unitKey: string;
  day: string;
}

/** The per-unit value y of a metric from a unit's count and sum of values. */
export function unitValue(kind: MetricKindName, count: number, sum: number): number {
  if (kind === "conversion") return count > 0 ? 1 : 0;
  if (kind === "count") return count;
  return sum; // sum, and the numerator of mean (whose denominator is the count)
}

export const dayOf = (d: Date): string => d.toISOString().slice(0, 10);
const isActive = (x: ExperimentDef, time: Date) => x.stopTime === null || time < x.stopTime;

/**
 * Exposures in stream order: the first valid one of a unit fixes its variant and start time; a
 * later one naming another variant is a conflict. Pure: reads `state`, changes nothing.
 */
export function planAssignments(exposures: readonly Exposure[], state: LoadedState): { assigned: NewAssignment[]; conflicts: Conflict[] } {
  const assigned: NewAssignment[] = [];
  const conflicts: Conflict[] = [];
  const made = new Map<string, string>(); // assignment key → variant, for this batch's own
  for (const e of exposures) {
    const x = state.experiments.get(e.experimentId);
    if (!x || x.environmentId !== e.environmentId || !x.variants.has(e.variant) || !isActive(x, e.time)) continue;
    const k = key.assignment(x.id, e.unitKey);
    const variant = state.assignments.get(k)?.variant ?? made.get(k);
    if (variant !== undefined) {
      if (variant !== e.variant) conflicts.push({ experimentId: x.id, unitKey: e.unitKey, day: dayOf(e.time) });
      continue;
    }
    made.set(k, e.variant);
    assigned.push({ experiment: x, unitKey: e.unitKey, environmentId: e.environmentId, variant: e.variant, time: e.time, dimensions: e.dimensions });
  }
  return { assigned, conflicts };
}

export interface FoldInput {
  state: LoadedState;
  planned: { assigned: NewAssignment[]; conflicts: Conflict[] };
  /** Per new assignment (same order as `planned.assigned`), the unit's stored events split at its boundary. */
  history: HistoryRow[][];
  /** Tracked events of metric event names, in stream order. */
  tracks: readonly Track[];
  toleranceMs: number;
}

export interface FoldOutput {
  /** Assignments and totals to write (the dirty ones of the state, and the new ones). */
  assignments: Assignment[];
  totals: MetricTotal[];
  variantDeltas: VariantDelta[];
  exposureDeltas: ExposureDelta[];
  assignmentsMade: number;
  conflicts: number;
}

/** Applies the planned assignments and the tracked events to the loaded state (which it updates) and returns what to write. */
export function fold({ state, planned, history, tracks, toleranceMs }: FoldInput): FoldOutput {
  const { assignments, totals, experiments } = state;
  const variantDeltas = new Map<string, VariantDelta>();
  const variantDelta = (experimentId: string, metricId: string, variant: string, day: string): VariantDelta => {
    const k = key.variantDay(experimentId, metricId, variant, day);
    let d = variantDeltas.get(k);
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
      variantDeltas.set(k, d);
    }
    return d;
  };
  const exposureDeltas = new Map<string, ExposureDelta>();
  const exposureDelta = (experimentId: string, variant: string, day: string): ExposureDelta => {
    const k = key.exposureDay(experimentId, variant, day);
    let d = exposureDeltas.get(k);
    if (!d) exposureDeltas.set(k, (d = { experimentId, variant, day, units: 0, conflictingUnits: 0, conflictingExposures: 0 }));
    return d;
  };
  const totalOf = (experimentId: string, metricId: string, unitKey: string): MetricTotal => {
    const k = key.total(experimentId, metricId, unitKey);
    let t = totals.get(k);
    if (!t) totals.set(k, (t = { experimentId, metricId, unitKey, count: 0, sum: 0, covariate: 0, dirty: true }));
    return t;
  };
  /** Adds events (count, sum of values) to a unit's metric total, on the events' day. */
  const addToMetric = (
    x: ExperimentDef,
    m: { id: string; kind: MetricKindName },
    unitKey: string,
    variant: string,
    day: string,
    count: number,
    value: number,
  ) => {
    const mt = totalOf(x.id, m.id, unitKey);
    const y0 = unitValue(m.kind, mt.count, mt.sum);
    const d0 = mt.count;
    mt.count += count;
    mt.sum += value;
    mt.dirty = true;
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

  // Conflicts, counted on the assignment's variant (a new one of this batch included).
  const conflictCounts = new Map<string, number>(); // of this batch's new assignments
  const newVariant = new Map(planned.assigned.map((a) => [key.assignment(a.experiment.id, a.unitKey), a.variant]));
  for (const c of planned.conflicts) {
    const k = key.assignment(c.experimentId, c.unitKey);
    const existing = assignments.get(k);
    const conflictsBefore = existing?.conflicts ?? conflictCounts.get(k) ?? 0;
    const d = exposureDelta(c.experimentId, existing?.variant ?? newVariant.get(k)!, c.day);
    if (conflictsBefore === 0) d.conflictingUnits++;
    d.conflictingExposures++;
    if (existing) {
      existing.conflicts++;
      existing.dirty = true;
    } else conflictCounts.set(k, conflictsBefore + 1);
  }

  // New assignments: the unit's events so far (this batch's included), split at T − tolerance.
  const assignedNow = new Set<string>();
  for (const [i, a] of planned.assigned.entries()) {
    const k = key.assignment(a.experiment.id, a.unitKey);
    assignedNow.add(k);
    assignments.set(k, {
      experimentId: a.experiment.id,
      unitKey: a.unitKey,
      environmentId: a.environmentId,
      variant: a.variant,
      firstExposureAt: a.time,
      conflicts: conflictCounts.get(k) ?? 0,
      dimensions: a.dimensions,
      dirty: true,
    });
    exposureDelta(a.experiment.id, a.variant, dayOf(a.time)).units++;
    const own = history[i] ?? [];
    for (const m of a.experiment.metrics) {
      const mine = own.filter((r) => r.eventName === m.eventName);
      const pre = mine.find((r) => !r.post);
      const covariate = unitValue(m.kind, pre?.count ?? 0, pre?.sum ?? 0);
      totals.set(key.total(a.experiment.id, m.id, a.unitKey), {
        experimentId: a.experiment.id,
        metricId: m.id,
        unitKey: a.unitKey,
        count: 0,
        sum: 0,
        covariate,
        dirty: true,
      });
      const d = variantDelta(a.experiment.id, m.id, a.variant, dayOf(a.time));
      d.units++;
      d.covSum += covariate;
      d.covSquares += covariate * covariate;
      // Events after the exposure that arrived before it: added day by day, as if in time.
      for (const r of mine) if (r.post) addToMetric(a.experiment, m, a.unitKey, a.variant, r.day!, r.count, r.sum);
    }
  }

  // Tracked events of units assigned before this batch.
  const byUnit = new Map<string, Assignment[]>();
  for (const a of assignments.values()) {
    if (assignedNow.has(key.assignment(a.experimentId, a.unitKey))) continue; // read back above
    const k = key.unit(a.environmentId, a.unitKey);
    byUnit.set(k, [...(byUnit.get(k) ?? []), a]);
  }
  for (const e of tracks) {
    for (const a of byUnit.get(key.unit(e.environmentId, e.unitKey)) ?? []) {
      const x = experiments.get(a.experimentId);
      const ms = x?.metricsByEvent.get(e.name);
      if (!x || !ms) continue;
      if (e.time.getTime() >= a.firstExposureAt.getTime() - toleranceMs) {
        if (!isActive(x, e.time)) continue;
        for (const m of ms) addToMetric(x, m, e.unitKey, a.variant, dayOf(e.time), 1, e.value);
        continue;
      }
      // Happened before the exposure but arrived after it: it belongs to the covariate.
      for (const m of ms) {
        const mt = totalOf(x.id, m.id, e.unitKey);
        const c0 = mt.covariate;
        const c1 = m.kind === "conversion" ? 1 : m.kind === "count" ? c0 + 1 : c0 + e.value;
        const y = unitValue(m.kind, mt.count, mt.sum);
        mt.covariate = c1;
        mt.dirty = true;
        const d = variantDelta(x.id, m.id, a.variant, dayOf(a.firstExposureAt));
        d.covSum += c1 - c0;
        d.covSquares += c1 * c1 - c0 * c0;
        d.covProduct += (c1 - c0) * y;
      }
    }
  }

  return {
    assignments: [...assignments.values()].filter((a) => a.dirty),
    totals: [...totals.values()].filter((t) => t.dirty),
    variantDeltas: [...variantDeltas.values()],
    exposureDeltas: [...exposureDeltas.values()],
    assignmentsMade: planned.assigned.length,
    conflicts: planned.conflicts.length,
  };
}
