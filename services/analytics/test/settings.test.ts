/**
 * Analysis settings end to end on real Postgres and NATS: settings accepted by CreateExperiment
 * and changed by UpdateExperimentSettings (validated, versioned), each one exercised on results of
 * events sent through Track and exposures on the stream; health warnings first; PlanExperiment.
 */
import { randomUUID } from "node:crypto";
import { create, fromJson, toBinary } from "@bufbuild/protobuf";
import { timestampNow, ValueSchema } from "@bufbuild/protobuf/wkt";
import { Code, ConnectError } from "@connectrpc/connect";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { EventService } from "#gen/vane/events/v1/event_service_pb.js";
import { EventEnvelopeSchema } from "#gen/vane/events/v1/events_pb.js";
import { ExperimentService } from "#gen/vane/experiments/v1/experiment_service_pb.js";
import {
  Correction,
  Direction,
  type Experiment,
  type ExperimentSettings,
  LiftScale,
  MetricKind,
  StatisticsEngine,
  TestSides,
} from "#gen/vane/experiments/v1/experiments_pb.js";
import { FlagService } from "#gen/vane/flags/v1/flag_service_pb.js";
import { FlagType } from "#gen/vane/flags/v1/flags_pb.js";
import { createRng } from "../stats/rng.ts";
import { type AnalyticsHarness, startAnalytics, type Tenant } from "./harness.ts";

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const variants = ["control", "treatment"].map((key) => ({ key, value: fromJson(ValueSchema, key) }));
const arms = [
  { variant: "control", weight: 1 },
  { variant: "treatment", weight: 1 },
];

/** The call fails with `code` and a message naming every one of `words` (the field and its limit). */
async function rejects(call: Promise<unknown>, code: Code, ...words: string[]) {
  const err = await call.then(
    () => null,
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(ConnectError);
  expect((err as ConnectError).code, (err as ConnectError).message).toBe(code);
  for (const w of words) expect((err as ConnectError).rawMessage).toContain(w);
}

describe("analysis settings end to end", () => {
  let h: AnalyticsHarness;
  let t: Tenant;
  beforeAll(async () => {
    h = await startAnalytics();
    t = await h.seedTenant();
    const flags = h.client(FlagService, t.ownerToken);
    for (const key of ["pricing", "draft", "tiny"]) await flags.createFlag({ projectId: t.projectId, key, name: key, type: FlagType.STRING, variants });
    const x = h.client(ExperimentService, t.ownerToken);
    const metric = (key: string, eventName: string, kind: MetricKind, direction = Direction.INCREASE) =>
      x.createMetric({ projectId: t.projectId, key, name: key, eventName, kind, direction });
    await metric("converted", "purchase", MetricKind.CONVERSION);
    await metric("revenue", "purchase", MetricKind.SUM);
    await metric("errors", "error", MetricKind.COUNT, Direction.DECREASE);
    await metric("refunds", "refund", MetricKind.COUNT, Direction.DECREASE);
  });
  afterAll(() => h?.close());

  const base = () => ({ projectId: t.projectId, environmentId: t.environmentId, name: "n", variants: arms, primaryMetricKeys: ["converted"] });

  async function caughtUp() {
    const consumer = h.analytics.pipeline.consumerName;
    for (let i = 0; i < 300; i++) {
      const info = await h.bus.jsm.consumers.info(h.eventsStream, consumer);
      if (info.num_pending === 0 && info.num_ack_pending === 0) return;
      await sleep(100);
    }
    throw new Error("pipeline did not catch up");
  }

  /** Units alternate between the arms; `events` says what each tracks after its exposure. */
  async function run(
    experimentId: string,
    flagKey: string,
    units: number,
    events: (i: number, variant: string) => { name: string; value?: number }[],
    before?: (i: number) => { name: string; value?: number }[],
  ) {
    const serverToken = await h.sign({ sub: randomUUID(), org: t.orgId, prj: t.projectId, env: t.environmentId, kind: "server" });
    const track = h.client(EventService, serverToken);
    const send = async (list: { name: string; unitKey: string; value?: number }[]) => {
      for (let i = 0; i < list.length; i += 1000) {
        const r = await track.track({ events: list.slice(i, i + 1000).map((e) => ({ ...e, eventId: randomUUID() })) });
        expect(r.rejected).toEqual([]);
      }
    };
    const all = Array.from({ length: units }, (_, i) => ({ i, key: `${flagKey}-${i}`, variant: i % 2 ? "treatment" : "control" }));
    if (before) {
      await send(all.flatMap((u) => before(u.i).map((e) => ({ ...e, unitKey: u.key }))));
      // Before or after an exposure is decided by time, with 1 s of clock-skew tolerance.
      await sleep(1200);
    }
    for (let i = 0; i < all.length; i += 500)
      await Promise.all(
        all.slice(i, i + 500).map((u) =>
          h.bus.js.publish(
            `${h.subjectPrefix}.${t.environmentId}.exposure`,
            toBinary(
              EventEnvelopeSchema,
              create(EventEnvelopeSchema, {
                eventId: randomUUID(),
                organizationId: t.orgId,
                projectId: t.projectId,
                environmentId: t.environmentId,
                receiveTime: timestampNow(),
                payload: { case: "exposure", value: { flagKey, variant: u.variant, experimentId, unitKey: u.key, time: timestampNow() } },
              }),
            ),
          ),
        ),
      );
    await send(all.flatMap((u) => events(u.i, u.variant).map((e) => ({ ...e, unitKey: u.key }))));
    await caughtUp();
  }

  it("validates settings in the contract and against the experiment, and updates them with the expected version", async () => {
    const x = h.client(ExperimentService, t.ownerToken);
    const create = (key: string, settings: Partial<ExperimentSettings>) =>
      x.createExperiment({ ...base(), flagKey: "draft", key, settings: settings as ExperimentSettings });
    await rejects(create("bad-level", { confidenceLevel: 0.3 }), Code.InvalidArgument, "confidence_level", "0.5", "0.999");
    await rejects(create("bad-tuning", { sequentialTuningUnits: 50n }), Code.InvalidArgument, "sequential_tuning_units", "100");
    await rejects(create("bad-engine", { engine: 7 as StatisticsEngine }), Code.InvalidArgument, "engine");
    await rejects(create("bad-risk", { riskThreshold: 2 }), Code.InvalidArgument, "risk_threshold", "1");
    await rejects(
      create("bad-prior", { priors: [{ metricKey: "converted", mean: 0, standardDeviation: 0 }] as ExperimentSettings["priors"] }),
      Code.InvalidArgument,
      "standard_deviation",
      "0",
    );
    await rejects(
      create("foreign-prior", { priors: [{ metricKey: "refunds", mean: 0, standardDeviation: 0.1 }] as ExperimentSettings["priors"] }),
      Code.InvalidArgument,
      "settings.priors",
      "refunds",
    );

    const created = (
      await create("settings", {
        engine: StatisticsEngine.BAYESIAN,
        confidenceLevel: 0.9,
        correction: Correction.HOLM,
        priors: [{ metricKey: "converted", mean: 0, standardDeviation: 0.1 }] as ExperimentSettings["priors"],
      })
    ).experiment!;
    const read = (await x.getExperiment({ id: created.id })).experiment!;
    expect(read.settings?.engine).toBe(StatisticsEngine.BAYESIAN);
    expect(read.settings?.confidenceLevel).toBe(0.9);
    expect(read.settings?.correction).toBe(Correction.HOLM);
    expect(read.settings?.priors.map((p) => [p.metricKey, p.mean, p.standardDeviation])).toEqual([["converted", 0, 0.1]]);

    const next = { scale: LiftScale.ABSOLUTE, sequential: true } as ExperimentSettings;
    await rejects(x.updateExperimentSettings({ id: created.id, expectedVersion: 7n, settings: next }), Code.Aborted, "expected_version");
    await rejects(x.updateExperimentSettings({ id: created.id, expectedVersion: 0n, settings: next }), Code.InvalidArgument, "expected_version");
    await rejects(x.updateExperimentSettings({ id: created.id, expectedVersion: created.version }), Code.InvalidArgument, "settings");
    const viewer = await h.member(t, "viewer");
    await rejects(
      h.client(ExperimentService, viewer.token).updateExperimentSettings({ id: created.id, expectedVersion: created.version, settings: next }),
      Code.PermissionDenied,
    );
    const updated = (await x.updateExperimentSettings({ id: created.id, expectedVersion: created.version, settings: next })).experiment!;
    expect(updated.version).toBe(created.version + 1n);
    // Replaced entirely: what the update did not name is back to its default.
    expect([updated.settings?.scale, updated.settings?.sequential, updated.settings?.engine, updated.settings?.priors]).toEqual([
      LiftScale.ABSOLUTE,
      true,
      StatisticsEngine.UNSPECIFIED,
      [],
    ]);

    // No exposures yet: results say so first.
    const { results } = await x.getResults({ id: created.id });
    expect(results!.warnings[0].code).toBe("no_data");
    expect(results!.warnings[0].message).toMatch(/^No data yet: no unit has been exposed/);
  });

  it("applies every setting to results of tracked events, while running", async () => {
    const x = h.client(ExperimentService, t.ownerToken);
    let experiment: Experiment = (
      await x.createExperiment({
        ...base(),
        flagKey: "pricing",
        key: "pricing",
        secondaryMetricKeys: ["revenue", "refunds"],
        guardrailMetricKeys: ["errors"],
        settings: { plannedUnitsPerArm: 1000n } as ExperimentSettings,
      })
    ).experiment!;
    experiment = (await x.startExperiment({ id: experiment.id })).experiment!;
    // Seeded: treatment converts 40% against 30%; spend before exposure predicts revenue (CUPED);
    // nobody is ever refunded (a metric without data).
    const rng = createRng(2026);
    const spend = Array.from({ length: 800 }, () => Math.floor(100 * rng.uniform()));
    await run(
      experiment.id,
      "pricing",
      800,
      (i, variant) => {
        const out: { name: string; value?: number }[] = [];
        if (rng.uniform() < (variant === "treatment" ? 0.4 : 0.3)) out.push({ name: "purchase", value: spend[i] + Math.floor(5 * rng.uniform()) });
        if (rng.uniform() < 0.1) out.push({ name: "error" });
        return out;
      },
      (i) => [{ name: "purchase", value: spend[i] }],
    );
    const results = async (settings: Partial<ExperimentSettings>) => {
      experiment = (await x.updateExperimentSettings({ id: experiment.id, expectedVersion: experiment.version, settings: settings as ExperimentSettings }))
        .experiment!;
      return (await x.getResults({ id: experiment.id })).results!;
    };
    const metric = (r: Awaited<ReturnType<typeof results>>, key: string) => r.metrics.find((m) => m.metricKey === key)!.variants[1];

    // Defaults: frequentist, two-sided, relative scale, Benjamini–Hochberg, fixed horizon, CUPED.
    let r = (await x.getResults({ id: experiment.id })).results!;
    expect([r.engine, r.scale, r.sides, r.sequential, r.correction, r.confidenceLevel]).toEqual([
      StatisticsEngine.FREQUENTIST,
      LiftScale.RELATIVE,
      TestSides.TWO_SIDED,
      false,
      "benjamini-hochberg",
      0.95,
    ]);
    let v = metric(r, "converted");
    expect(v.lift).toBe(v.relativeLift);
    // Corrected across the three decision metrics: the interval is at the level the correction
    // tested this comparison at, so it is wider than the uncorrected one and agrees with the decision.
    expect(v.liftInterval!.lower).toBeLessThan(v.relativeLiftInterval!.lower);
    expect(v.liftInterval!.upper).toBeGreaterThan(v.relativeLiftInterval!.upper);
    expect(v.decisionPValue).toBe(v.adjustedPValue);
    expect(v.significant).toBe(v.adjustedPValue < 0.05);
    expect(v.significant).toBe(v.liftInterval!.lower > 0 || v.liftInterval!.upper < 0);
    expect(Number.isNaN(v.risk)).toBe(true);
    expect(metric(r, "revenue").cupedApplied).toBe(true);
    expect(r.progress).toMatchObject({ plannedUnitsPerArm: 1000n, smallestArmUnits: 400n, fraction: 0.4 });
    // Health first: the refunds metric has no data; nothing else is wrong.
    expect(r.warnings.map((w) => [w.code, w.metricKey])).toEqual([["no_data", "refunds"]]);
    expect(r.warnings[0].message).toContain('no exposed unit has tracked "refund"');

    // Absolute scale, one-sided, Holm, 90%, CUPED off.
    r = await results({ scale: LiftScale.ABSOLUTE, sides: TestSides.ONE_SIDED, correction: Correction.HOLM, confidenceLevel: 0.9, disableCuped: true });
    expect([r.scale, r.sides, r.correction, r.confidenceLevel]).toEqual([LiftScale.ABSOLUTE, TestSides.ONE_SIDED, "holm", 0.9]);
    v = metric(r, "converted");
    expect(v.lift).toBe(v.absoluteLift);
    expect(v.liftInterval!.upper).toBe(Infinity);
    expect(v.liftInterval!.lower).toBeLessThanOrEqual(v.absoluteLiftInterval!.lower);
    expect(v.significant).toBe(v.decisionPValue < 0.1);
    expect(v.significant).toBe(v.liftInterval!.lower > 0);
    expect(metric(r, "revenue").cupedApplied).toBe(false);
    // Guardrails stay two-sided, to catch harm.
    expect(Number.isFinite(metric(r, "errors").absoluteLiftInterval!.upper)).toBe(true);
    // Without a correction the decision interval is the plain one.
    r = await results({ scale: LiftScale.ABSOLUTE, correction: Correction.NONE });
    v = metric(r, "converted");
    expect([r.correction, v.decisionPValue]).toEqual(["none", v.pValue]);
    expect(v.liftInterval).toEqual(v.absoluteLiftInterval);
    expect(v.significant).toBe(v.liftInterval!.lower > 0 || v.liftInterval!.upper < 0);

    // Sequential, tuned to the plan: the decision follows the always-valid numbers.
    r = await results({ sequential: true, sequentialTuningUnits: 2000n });
    v = metric(r, "converted");
    expect(r.sequential).toBe(true);
    expect(v.liftInterval).toEqual(v.relativeSequentialInterval);
    expect(v.decisionPValue).toBeGreaterThanOrEqual(v.sequentialPValue);
    expect(v.significant).toBe(v.decisionPValue < 0.05);
    const wide = metric(await results({ sequential: true, sequentialTuningUnits: 1_000_000n }), "converted");
    // Tuned for far more units than there are, the interval is wider now.
    expect(wide.sequentialInterval!.upper - wide.sequentialInterval!.lower).toBeGreaterThan(v.sequentialInterval!.upper - v.sequentialInterval!.lower);

    // Bayesian: credible interval, chance to win and risk; a sceptical prior pulls towards no effect.
    r = await results({ engine: StatisticsEngine.BAYESIAN });
    expect(r.engine).toBe(StatisticsEngine.BAYESIAN);
    const flat = metric(r, "converted");
    expect(flat.liftInterval).toEqual(flat.credibleInterval);
    expect(flat.chanceToBeatControl).toBeGreaterThan(0.95);
    expect(flat.risk).toBeLessThan(flat.controlRisk);
    expect(Number.isNaN(flat.decisionPValue)).toBe(true);
    expect(flat.significant).toBe(flat.chanceToBeatControl >= 0.95 && flat.risk <= 0.0025);
    const strict = metric(await results({ engine: StatisticsEngine.BAYESIAN, chanceToWinThreshold: 0.9999, riskThreshold: 0.000001 }), "converted");
    expect(strict.significant).toBe(false);
    const sceptical = metric(
      await results({
        engine: StatisticsEngine.BAYESIAN,
        priors: [{ metricKey: "converted", mean: 0, standardDeviation: 0.01 }] as ExperimentSettings["priors"],
      }),
      "converted",
    );
    expect(sceptical.chanceToBeatControl).toBeLessThan(flat.chanceToBeatControl);
    expect(sceptical.credibleInterval!.upper).toBeLessThan(flat.credibleInterval!.upper);
  });

  it("warns about a small sample before anything else", async () => {
    const x = h.client(ExperimentService, t.ownerToken);
    const created = (await x.createExperiment({ ...base(), flagKey: "tiny", key: "tiny" })).experiment!;
    await x.startExperiment({ id: created.id });
    await run(created.id, "tiny", 40, (i) => (i % 4 === 0 ? [{ name: "purchase", value: 1 }] : []));
    const { results } = await x.getResults({ id: created.id });
    expect(results!.warnings[0].code).toBe("small_sample");
    expect(results!.warnings[0].message).toContain("control has 20 units, treatment has 20 units (fewer than 100 per arm)");
  });

  it("plans sample size and duration, and refuses bad input naming the field and limit", async () => {
    const x = h.client(ExperimentService, t.ownerToken);
    const plan = await x.planExperiment({
      baseline: { case: "conversionRate", value: 0.1 },
      unitsPerDay: 2000,
      arms: 2,
      target: { case: "relativeMde", value: 0.1 },
    });
    // 2·0.09·(z₀.₉₇₅ + z₀.₈)²/0.01² = 14 127.98 → 14 128 per arm; 28 256 units at 2,000 a day: 15 days.
    expect([plan.unitsPerArm, plan.totalUnits, plan.days]).toEqual([14128n, 28256n, 15n]);
    expect(plan.relativeMde).toBeLessThanOrEqual(0.1);
    expect(plan.absoluteMde).toBeCloseTo(plan.relativeMde * 0.1, 12);
    const back = await x.planExperiment({
      baseline: { case: "mean", value: { mean: 20, variance: 400 } },
      unitsPerDay: 500,
      arms: 3,
      target: { case: "unitsPerArm", value: 1000n },
    });
    expect([back.unitsPerArm, back.totalUnits, back.days]).toEqual([1000n, 3000n, 6n]);
    expect(back.relativeMde).toBeCloseTo((2.801585218 * Math.sqrt(800 / 1000)) / 20, 6);

    const ok = { baseline: { case: "conversionRate" as const, value: 0.1 }, unitsPerDay: 100, arms: 2, target: { case: "relativeMde" as const, value: 0.1 } };
    await rejects(x.planExperiment({ ...ok, arms: 1 }), Code.InvalidArgument, "arms", "2");
    await rejects(x.planExperiment({ ...ok, baseline: { case: "conversionRate", value: 1 } }), Code.InvalidArgument, "conversion_rate", "1");
    await rejects(x.planExperiment({ ...ok, baseline: { case: undefined } }), Code.InvalidArgument, "baseline");
    await rejects(x.planExperiment({ ...ok, target: { case: "relativeMde", value: 0 } }), Code.InvalidArgument, "relative_mde", "0");
    await rejects(x.planExperiment({ ...ok, power: 0.2 }), Code.InvalidArgument, "power", "0.5");
    await rejects(x.planExperiment({ ...ok, unitsPerDay: 0 }), Code.InvalidArgument, "units_per_day", "0");
    await rejects(x.planExperiment({ ...ok, unitsPerDay: 1e-300 }), Code.InvalidArgument, "units_per_day", "10^15 days");
    await rejects(x.planExperiment({ ...ok, baseline: { case: "mean", value: { mean: 0, variance: 1 } } }), Code.InvalidArgument, "mean", "0");
    await rejects(x.planExperiment({ ...ok, target: { case: "relativeMde", value: 1e-9 } }), Code.InvalidArgument, "relative_mde");
    await rejects(h.client(ExperimentService).planExperiment(ok), Code.Unauthenticated);
  });
});
