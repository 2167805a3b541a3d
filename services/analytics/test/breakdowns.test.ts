/**
 * Breakdowns: the segments' bounds and the breakdown-wide correction (pure), the first exposure's
 * values sticking with the unit (the fold), and on real Postgres the invariant that makes a
 * segment trustworthy — the per-unit totals grouped by segment are exactly the per-variant sums
 * of the main results: one segment holding every unit reproduces the main results' numbers for
 * every metric kind (CUPED included), and segments add up to the whole.
 */
import { randomUUID } from "node:crypto";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { create } from "@bufbuild/protobuf";
import { Direction, ResultsSchema } from "#gen/vane/experiments/v1/experiments_pb.js";
import { createDatabase, type Database, withTransaction } from "#lib/data/db.ts";
import { migrateToLatest } from "#lib/data/migrations.ts";
import { createTestLogger, dropSchema, testDatabaseUrl, uniqueName } from "#test/support/harness.ts";
import { boundedDimensions } from "../breakdown-dimensions.ts";
import { boundSegments, correctAcrossSegments, loadBreakdown, type SegmentRows } from "../breakdowns.ts";
import { migrations } from "../migrations/index.ts";
import { applyBatch, type PipelineEvent } from "../pipeline/apply.ts";
import { type ExperimentDef, type Exposure, planAssignments } from "../pipeline/fold.ts";
import { loadResults } from "../results.ts";
import type { AnalyticsDatabase } from "../schema.ts";
import { adjustPValues } from "../stats/index.ts";

const rows = (units: number): SegmentRows => ({ units: [{ variant: "control", units, conflictingUnits: 0, conflictingExposures: 0 }], sums: [] });

describe("segments", () => {
  it("keeps the most populous values apart, then (none), then the rest pooled as (other)", () => {
    const byValue = new Map<string | null, SegmentRows>([
      ["fr", rows(5)],
      ["de", rows(9)],
      [null, rows(4)],
      ["us", rows(7)],
      ["it", rows(1)],
      ["at", rows(5)],
    ]);
    const out = boundSegments(byValue, 3);
    expect(out.map((s) => s.value)).toEqual(["de", "us", "at", "(none)", "(other)"]); // "at" before "fr": ties by value
    expect(out.at(-1)!.rows.units.map((u) => u.units)).toEqual([5, 1]);
    expect(boundSegments(byValue, 10).map((s) => s.value)).toEqual(["de", "us", "at", "fr", "it", "(none)"]);
  });

  it("corrects every segment's comparisons together, guardrails among themselves, and re-derives guardrail verdicts", () => {
    const segment = (p: number[], g: { p: number; lift: number }) =>
      create(ResultsSchema, {
        metrics: [
          {
            metricKey: "m",
            role: "primary",
            direction: Direction.INCREASE,
            variants: [{ variant: "c" }, ...p.map((pValue) => ({ variant: "t", pValue, absoluteLift: 1 }))],
          },
          {
            metricKey: "g",
            role: "guardrail",
            direction: Direction.DECREASE,
            variants: [{ variant: "c" }, { variant: "t", pValue: g.p, absoluteLift: g.lift }],
          },
        ],
      });
    const segments = [segment([0.01, 0.04], { p: 0.001, lift: 2 }), segment([0.03, NaN], { p: 0.06, lift: 3 })];
    const n = correctAcrossSegments(segments, { alpha: 0.05, correction: "holm", scale: "absolute" });
    expect(n).toBe(5); // three decision p-values and two guardrails; NaN is no comparison
    const decision = adjustPValues([0.01, 0.04, 0.03, NaN], "holm");
    expect(segments.flatMap((s) => s.metrics[0].variants.slice(1).map((v) => v.adjustedPValue))).toEqual(decision);
    const [g1, g2] = segments.map((s) => s.metrics[1].variants[1]);
    expect([g1.adjustedPValue, g2.adjustedPValue]).toEqual(adjustPValues([0.001, 0.06], "holm"));
    expect([g1.guardrailViolated, g2.guardrailViolated]).toEqual([true, false]); // 0.06 is no violation, corrected or not
    expect(segments.flatMap((s) => s.metrics[0].variants.slice(1).map((v) => v.significant))).toEqual(decision.map((p) => p < 0.05));
  });

  it("bounds what an exposure carries even when the bus brings more", () => {
    expect(boundedDimensions({ a: "x".repeat(100), "bad name": "y", b: "1", c: "2", d: "3" })).toEqual({ a: "x".repeat(64), b: "1", c: "2" });
  });
});

describe("the first exposure's values stick with the unit", () => {
  it("plans the assignment with the first valid exposure's dimensions", () => {
    const x: ExperimentDef = { id: "x", environmentId: "e", variants: new Set(["a", "b"]), stopTime: null, metricsByEvent: new Map(), metrics: [] };
    const e = (seq: number, variant: string, country: string): Exposure => ({
      kind: "exposure",
      id: `${seq}`,
      seq,
      environmentId: "e",
      time: new Date(seq),
      experimentId: "x",
      variant,
      unitKey: "u",
      dimensions: { country },
    });
    const planned = planAssignments([e(1, "a", "DE"), e(2, "a", "FR"), e(3, "b", "US")], {
      experiments: new Map([["x", x]]),
      assignments: new Map(),
      totals: new Map(),
    });
    expect(planned.assigned.map((a) => a.dimensions)).toEqual([{ country: "DE" }]);
    expect(planned.conflicts).toHaveLength(1);
  });
});

describe("segment sums on Postgres", () => {
  const schema = uniqueName("analytics_breakdowns");
  let database: Database<AnalyticsDatabase>;
  const project = randomUUID();
  const env = randomUUID();
  const experimentId = randomUUID();
  const org = randomUUID();
  const metrics = [
    { key: "bought", event: "buy", kind: "conversion" },
    { key: "revenue", event: "buy", kind: "sum" },
    { key: "clicks", event: "click", kind: "count" },
    { key: "load", event: "load", kind: "mean" },
  ].map((m) => ({ ...m, id: randomUUID() }));

  beforeAll(async () => {
    const logger = createTestLogger();
    database = await createDatabase<AnalyticsDatabase>({ url: testDatabaseUrl, schema, logger });
    await migrateToLatest(database.db, migrations, { schema, logger });
    for (const m of metrics)
      await database.db
        .insertInto("metrics")
        .values({ id: m.id, organization_id: org, project_id: project, key: m.key, name: m.key, event_name: m.event, kind: m.kind, direction: "increase" })
        .execute();
    await database.db
      .insertInto("experiments")
      .values({
        id: experimentId,
        organization_id: org,
        project_id: project,
        environment_id: env,
        flag_key: "f",
        key: "x",
        name: "x",
        hypothesis: "",
        variants: JSON.stringify([
          { variant: "control", weight: 1 },
          { variant: "treatment", weight: 1 },
        ]),
        control_variant: "control",
        metric_keys: JSON.stringify({ primary: ["bought"], secondary: ["revenue", "clicks", "load"], guardrail: [] }),
        metric_ids: JSON.stringify(Object.fromEntries(metrics.map((m) => [m.key, m.id]))),
        layer_key: "",
        layer_share_percent: 0,
        shipped_variant: "",
        status: "running",
        start_time: new Date(),
        bandit: null,
        saved_environment: null,
        breakdown_dimensions: JSON.stringify(["country", "missing"]),
        version: 1,
      })
      .execute();

    // A seeded stream on one day: 400 units, pre-exposure events (CUPED covariates), events after.
    let state = 7;
    const rand = () => (state = (Math.imul(state, 1103515245) + 12345) >>> 0) / 2 ** 32;
    const t0 = Date.UTC(2026, 11, 2, 1);
    let seq = 0;
    const events: PipelineEvent[] = [];
    const track = (unitKey: string, name: string, ms: number, value: number): PipelineEvent => ({
      kind: "track",
      id: randomUUID(),
      seq: ++seq,
      environmentId: env,
      projectId: project,
      time: new Date(t0 + ms),
      name,
      unitKey,
      value,
    });
    for (let i = 0; i < 400; i++) {
      const unitKey = `u${i}`;
      const variant = i % 2 ? "treatment" : "control";
      for (let k = Math.floor(rand() * 3); k > 0; k--) events.push(track(unitKey, "click", 1000 + i, 1));
      events.push({
        kind: "exposure",
        id: randomUUID(),
        seq: ++seq,
        environmentId: env,
        time: new Date(t0 + 60_000 + i),
        experimentId,
        variant,
        unitKey,
        dimensions: { country: ["DE", "FR", "US"][i % 3] },
      });
      for (let k = Math.floor(rand() * 4); k > 0; k--) events.push(track(unitKey, "click", 120_000 + i, 1));
      if (rand() < 0.3) events.push(track(unitKey, "buy", 120_000 + i, Math.round(rand() * 100)));
      for (let k = 1 + Math.floor(rand() * 3); k > 0; k--) events.push(track(unitKey, "load", 120_000 + i, 100 + rand() * 50));
    }
    await withTransaction(database.db, (trx) => applyBatch(trx, events));
  });
  afterAll(async () => {
    await database?.destroy();
    await dropSchema(testDatabaseUrl, schema);
  });

  const experiment = () => database.db.selectFrom("experiments").selectAll().where("id", "=", experimentId).executeTakeFirstOrThrow();

  it("one segment of every unit reproduces the main results, for every metric kind", async () => {
    const x = await experiment();
    const main = await loadResults(database.db, x, 0.95);
    const b = await loadBreakdown(database.db, x, "missing", 0, 0.95);
    expect(b.segments.map((s) => [s.value, Number(s.units)])).toEqual([["(none)", 400]]);
    const seg = b.segments[0].results!;
    const numbers = (r: typeof main) =>
      r.metrics.map((m) =>
        m.variants.map((v) => [
          m.metricKey,
          v.variant,
          Number(v.units),
          v.mean,
          v.standardError,
          v.absoluteLift,
          v.pValue,
          v.relativeLift,
          v.cupedApplied,
          v.cupedVarianceReduction,
        ]),
      );
    const rounded = (a: unknown) => JSON.stringify(a, (_, v: unknown) => (typeof v === "number" ? Number(v.toPrecision(10)) : v));
    expect(rounded(numbers(seg))).toBe(rounded(numbers(main)));
    expect(main.metrics.some((m) => m.variants.some((v) => v.cupedApplied))).toBe(true); // the covariates were exercised
    expect(seg.sampleRatio!.observedUnits).toEqual(main.sampleRatio!.observedUnits);
  });

  it("segments add up to the whole", async () => {
    const x = await experiment();
    const main = await loadResults(database.db, x, 0.95);
    const b = await loadBreakdown(database.db, x, "country", 2, 0.95);
    expect(b.segments.map((s) => s.value)).toEqual(["DE", "FR", "(other)"]);
    for (const [i, m] of main.metrics.entries())
      for (const [j, v] of m.variants.entries()) {
        const parts = b.segments.map((s) => s.results!.metrics[i].variants[j]);
        expect(parts.reduce((a, p) => a + Number(p.units), 0)).toBe(Number(v.units));
        // Totals add up where the mean is a plain per-unit mean (CUPED adjusts each segment by its own θ).
        if (m.metricKey !== "load" && !v.cupedApplied && parts.every((p) => !p.cupedApplied))
          expect(parts.reduce((a, p) => a + p.mean * Number(p.units), 0)).toBeCloseTo(v.mean * Number(v.units), 6);
      }
    expect(b.comparisons).toBe(12n); // 3 segments × 4 metrics × 1 treatment
    expect(b.warnings[0].code).toBe("breakdown_not_main_result");
  });
});
