/**
 * End to end with identity, flags, collector and analytics in one process on real Postgres and
 * NATS: a flag, metrics, an experiment started through the flags service, tracked events through
 * the collector and exposures on the stream, results that show the simulated effect, and a stop
 * that ships the winner.
 */
import { randomUUID } from "node:crypto";
import { create, fromJson, toBinary } from "@bufbuild/protobuf";
import { timestampNow, ValueSchema } from "@bufbuild/protobuf/wkt";
import { Code } from "@connectrpc/connect";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { EventService } from "#gen/vane/events/v1/event_service_pb.js";
import { EventEnvelopeSchema } from "#gen/vane/events/v1/events_pb.js";
import { ExperimentService } from "#gen/vane/experiments/v1/experiment_service_pb.js";
import { Direction, ExperimentStatus, MetricKind } from "#gen/vane/experiments/v1/experiments_pb.js";
import { FlagService } from "#gen/vane/flags/v1/flag_service_pb.js";
import { FlagType } from "#gen/vane/flags/v1/flags_pb.js";
import { createRng } from "../stats/rng.ts";
import { type AnalyticsHarness, startAnalytics, type Tenant } from "./harness.ts";

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const variants = ["control", "treatment"].map((key) => ({ key, value: fromJson(ValueSchema, key) }));

describe("experiments end to end", () => {
  let h: AnalyticsHarness;
  let t: Tenant;
  beforeAll(async () => {
    h = await startAnalytics();
    t = await h.seedTenant();
    const flags = h.client(FlagService, t.ownerToken);
    for (const key of ["checkout", "banner"]) {
      await flags.createFlag({ projectId: t.projectId, key, name: key, type: FlagType.STRING, variants });
      await flags.updateFlagEnvironment({
        environmentId: t.environmentId,
        flagKey: key,
        enabled: true,
        defaultVariant: "control",
        rules: [{ outcome: { kind: { case: "variant", value: "control" } } }],
      });
    }
    const x = h.client(ExperimentService, t.ownerToken);
    await x.createMetric({
      projectId: t.projectId,
      key: "converted",
      name: "Purchased",
      eventName: "purchase",
      kind: MetricKind.CONVERSION,
      direction: Direction.INCREASE,
    });
    await x.createMetric({
      projectId: t.projectId,
      key: "revenue",
      name: "Revenue",
      eventName: "purchase",
      kind: MetricKind.SUM,
      direction: Direction.INCREASE,
    });
    await x.createMetric({ projectId: t.projectId, key: "errors", name: "Errors", eventName: "error", kind: MetricKind.COUNT, direction: Direction.DECREASE });
    await x.createMetric({
      projectId: t.projectId,
      key: "basket",
      name: "Basket",
      eventName: "purchase",
      kind: MetricKind.MEAN,
      direction: Direction.INCREASE,
    });
  });
  afterAll(() => h?.close());

  async function caughtUp() {
    const consumer = h.analytics.pipeline.consumerName;
    for (let i = 0; i < 300; i++) {
      const info = await h.bus.jsm.consumers.info(h.eventsStream, consumer);
      if (info.num_pending === 0 && info.num_ack_pending === 0) return;
      await sleep(100);
    }
    throw new Error("pipeline did not catch up");
  }

  it("validates, allocates layer slices and checks roles", async () => {
    const x = h.client(ExperimentService, t.ownerToken);
    const base = { projectId: t.projectId, environmentId: t.environmentId, flagKey: "banner", name: "n", primaryMetricKeys: ["converted"] };
    const two = [
      { variant: "control", weight: 1 },
      { variant: "treatment", weight: 1 },
    ];
    await expect(
      x.createExperiment({
        ...base,
        key: "bad-variant",
        variants: [
          { variant: "control", weight: 1 },
          { variant: "nope", weight: 1 },
        ],
      }),
    ).rejects.toMatchObject({ code: Code.InvalidArgument });
    await expect(x.createExperiment({ ...base, key: "bad-metric", variants: two, primaryMetricKeys: ["nope"] })).rejects.toMatchObject({
      code: Code.InvalidArgument,
    });
    await expect(x.createExperiment({ ...base, key: "zero", variants: two.map((v) => ({ ...v, weight: 0 })) })).rejects.toMatchObject({
      code: Code.InvalidArgument,
    });
    await expect(x.createExperiment({ ...base, key: "no-flag", flagKey: "nope", variants: two })).rejects.toMatchObject({ code: Code.FailedPrecondition });
    const a = (await x.createExperiment({ ...base, key: "l-a", variants: two, layerKey: "hero", layerSharePercent: 60 })).experiment!;
    await expect(x.createExperiment({ ...base, key: "l-b", variants: two, layerKey: "hero", layerSharePercent: 50 })).rejects.toMatchObject({
      code: Code.FailedPrecondition,
    });
    const b = (await x.createExperiment({ ...base, key: "l-b", variants: two, layerKey: "hero", layerSharePercent: 40 })).experiment!;
    await expect(x.createExperiment({ ...base, key: "l-a", variants: two })).rejects.toMatchObject({ code: Code.AlreadyExists });

    // Start b: its rule carries its slice [6000, 10000) of the layer and the rollout pinned to it.
    await x.startExperiment({ id: b.id, reason: "go" });
    const env = (await h.client(FlagService, t.ownerToken).getFlag({ projectId: t.projectId, key: "banner" })).environments.find(
      (e) => e.environmentId === t.environmentId,
    )!;
    // Ahead of the flag's own catch-all rule, which serves the units outside b's slice.
    expect(env.rules.map((r) => r.id.startsWith("experiment-") || r.outcome?.kind.value)).toEqual([true, "control"]);
    const layer = env.rules[0].conditions[0].kind;
    expect(layer.case === "layer" && [layer.value.layerKey, layer.value.start, layer.value.end]).toEqual(["hero", 6000, 10000]);
    await expect(x.startExperiment({ id: a.id })).rejects.toMatchObject({ code: Code.FailedPrecondition }); // one running per flag
    // Stop without shipping: the flag's own rules come back.
    await x.stopExperiment({ id: b.id, reason: "done" });
    const restored = (await h.client(FlagService, t.ownerToken).getFlag({ projectId: t.projectId, key: "banner" })).environments.find(
      (e) => e.environmentId === t.environmentId,
    )!;
    expect(restored.rules.map((r) => r.outcome?.kind)).toEqual([{ case: "variant", value: "control" }]);
    expect(restored.defaultVariant).toBe("control");
    await expect(x.stopExperiment({ id: b.id })).rejects.toMatchObject({ code: Code.FailedPrecondition });

    const viewer = await h.member(t, "viewer");
    const v = h.client(ExperimentService, viewer.token);
    expect((await v.listExperiments({ projectId: t.projectId })).experiments.map((e) => e.key)).toEqual(expect.arrayContaining(["l-a", "l-b"]));
    expect((await v.getExperiment({ id: a.id })).experiment?.status).toBe(ExperimentStatus.DRAFT);
    await expect(
      v.createMetric({ projectId: t.projectId, key: "m", name: "m", eventName: "e", kind: MetricKind.COUNT, direction: Direction.INCREASE }),
    ).rejects.toMatchObject({ code: Code.PermissionDenied });
    await expect(v.startExperiment({ id: a.id })).rejects.toMatchObject({ code: Code.PermissionDenied });
    const editor = await h.member(t, "editor");
    await h
      .client(ExperimentService, editor.token)
      .createMetric({ projectId: t.projectId, key: "clicks", name: "Clicks", eventName: "click", kind: MetricKind.COUNT, direction: Direction.INCREASE });
    expect((await v.listMetrics({ projectId: t.projectId })).metrics.map((m) => m.key)).toEqual(["basket", "clicks", "converted", "errors", "revenue"]);
  });

  it("runs an experiment: flag rollout, events, results with the effect, ship", async () => {
    const x = h.client(ExperimentService, t.ownerToken);
    const created = (
      await x.createExperiment({
        projectId: t.projectId,
        environmentId: t.environmentId,
        flagKey: "checkout",
        key: "checkout-v2",
        name: "New checkout",
        hypothesis: "A shorter checkout converts more",
        variants: [
          { variant: "control", weight: 50 },
          { variant: "treatment", weight: 50 },
        ],
        primaryMetricKeys: ["converted"],
        secondaryMetricKeys: ["revenue", "basket"],
        guardrailMetricKeys: ["errors"],
      })
    ).experiment!;
    expect(created.status).toBe(ExperimentStatus.DRAFT);
    const started = (await x.startExperiment({ id: created.id, reason: "launch" })).experiment!;
    expect(started.status).toBe(ExperimentStatus.RUNNING);
    const flag = await h.client(FlagService, t.ownerToken).getFlag({ projectId: t.projectId, key: "checkout" });
    const env = flag.environments.find((e) => e.environmentId === t.environmentId)!;
    expect(env.defaultVariant).toBe("control");
    const outcome = env.rules[0].outcome?.kind;
    expect(outcome?.case).toBe("rollout");
    if (outcome?.case === "rollout") {
      expect(outcome.value.experimentId).toBe(created.id);
      expect(outcome.value.seed).toBe(created.id);
      expect(outcome.value.variants.map((v) => [v.variant, v.weight])).toEqual([
        ["control", 50],
        ["treatment", 50],
      ]);
    }

    // Simulated units: a pre-period spend that predicts post spend (CUPED), a conversion lift.
    // Seeded, so the draw (and so every assertion on it) is the same on every run.
    const random = (() => {
      const rng = createRng(20261205);
      return () => rng.uniform();
    })();
    const serverToken = await h.sign({ sub: randomUUID(), org: t.orgId, prj: t.projectId, env: t.environmentId, kind: "server" });
    const track = h.client(EventService, serverToken);
    const units = Array.from({ length: 2000 }, (_, i) => ({
      key: `user-${i}`,
      variant: random() < 0.5 ? "control" : "treatment",
      spend: Math.floor(random() * 100),
    }));
    const send = async (events: { name: string; unitKey: string; value?: number }[]) => {
      for (let i = 0; i < events.length; i += 1000) {
        const r = await track.track({ events: events.slice(i, i + 1000).map((e) => ({ ...e, eventId: randomUUID() })) });
        expect(r.rejected).toEqual([]);
      }
    };
    await send(units.map((u) => ({ name: "purchase", unitKey: u.key, value: u.spend })));
    // Before or after an exposure is decided by time, with 1 s of clock-skew tolerance.
    await sleep(1200);
    const exposure = (u: (typeof units)[number]) =>
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
            payload: { case: "exposure", value: { flagKey: "checkout", variant: u.variant, experimentId: created.id, unitKey: u.key, time: timestampNow() } },
          }),
        ),
      );
    for (let i = 0; i < units.length; i += 500) await Promise.all(units.slice(i, i + 500).map(exposure));
    // A unit seen later with the other variant: kept in its first, counted as a conflict.
    await exposure({ ...units[0], variant: units[0].variant === "control" ? "treatment" : "control" });
    const post = units.flatMap((u) => {
      const p = u.variant === "treatment" ? 0.5 : 0.3;
      const out: { name: string; unitKey: string; value?: number }[] = [];
      if (random() < p) out.push({ name: "purchase", unitKey: u.key, value: u.spend + (u.variant === "treatment" ? 10 : 0) + Math.floor(random() * 5) });
      if (random() < 0.1) out.push({ name: "error", unitKey: u.key });
      return out;
    });
    await send(post);
    await caughtUp();

    const { results } = await x.getResults({ id: created.id });
    expect(results!.sampleRatio!.mismatch).toBe(false);
    expect(results!.sampleRatio!.expectedShares).toEqual([0.5, 0.5]);
    expect(results!.sampleRatio!.observedUnits.reduce((a, b) => a + b, 0n)).toBe(2000n);
    expect(results!.conflictingExposures).toBe(1n);
    expect(results!.correction).toBe("benjamini-hochberg");
    expect(results!.metrics.map((m) => [m.metricKey, m.role])).toEqual([
      ["converted", "primary"],
      ["revenue", "secondary"],
      ["basket", "secondary"],
      ["errors", "guardrail"],
    ]);
    const converted = results!.metrics[0];
    const [control, treatment] = converted.variants;
    expect(control.variant).toBe("control");
    expect(control.units + treatment.units).toBe(2000n);
    expect(control.mean).toBeGreaterThan(0.2);
    expect(control.mean).toBeLessThan(0.4);
    expect(treatment.absoluteLift).toBeGreaterThan(0.1);
    expect(treatment.absoluteLiftInterval!.lower).toBeGreaterThan(0);
    expect(treatment.pValue).toBeLessThan(0.001);
    expect(treatment.adjustedPValue).toBeGreaterThanOrEqual(treatment.pValue);
    expect(treatment.chanceToBeatControl).toBeGreaterThan(0.99);
    expect(treatment.sequentialInterval!.lower).toBeLessThan(treatment.absoluteLift);
    // Pre-period spend predicts revenue: CUPED applies and removes variance.
    const revenue = results!.metrics[1].variants[1];
    expect(revenue.cupedApplied).toBe(true);
    expect(revenue.cupedVarianceReduction).toBeGreaterThan(0.1);
    expect(results!.metrics[2].variants[1].cupedApplied).toBe(false); // a ratio metric
    expect(converted.variants[1].cupedApplied).toBe(false); // every unit purchased before: no variance to use

    const timeline = (await x.getResultsTimeline({ id: created.id })).points;
    expect(timeline).toHaveLength(1);
    expect(timeline[0].results!.sampleRatio!.observedUnits).toEqual(results!.sampleRatio!.observedUnits);

    const stopped = (await x.stopExperiment({ id: created.id, shipVariant: "treatment", reason: "it wins" })).experiment!;
    expect(stopped.status).toBe(ExperimentStatus.STOPPED);
    expect(stopped.shippedVariant).toBe("treatment");
    const after = (await h.client(FlagService, t.ownerToken).getFlag({ projectId: t.projectId, key: "checkout" })).environments.find(
      (e) => e.environmentId === t.environmentId,
    )!;
    expect(after.defaultVariant).toBe("treatment");
    expect(after.rules).toEqual([]);
    const { entries } = await h.client(FlagService, t.ownerToken).listAuditEntries({ projectId: t.projectId, flagKey: "checkout" });
    expect(entries.map((e) => e.reason)).toEqual(expect.arrayContaining(["launch", "it wins"]));
  });
});
