/**
 * The bandit against the real flags service: after an interval, the primary metric's results
 * re-weight the experiment's rollout toward the better arm (the worse keeps its minimum share),
 * through UpdateFlagEnvironment, so the change is in the flags audit log; runs are recorded.
 */
import { randomUUID } from "node:crypto";
import { create, fromJson, toBinary } from "@bufbuild/protobuf";
import { timestampNow, ValueSchema } from "@bufbuild/protobuf/wkt";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { EventService } from "#gen/vane/events/v1/event_service_pb.js";
import { EventEnvelopeSchema } from "#gen/vane/events/v1/events_pb.js";
import { ExperimentService } from "#gen/vane/experiments/v1/experiment_service_pb.js";
import { Direction, MetricKind } from "#gen/vane/experiments/v1/experiments_pb.js";
import { FlagService } from "#gen/vane/flags/v1/flag_service_pb.js";
import { FlagType } from "#gen/vane/flags/v1/flags_pb.js";
import { type AnalyticsHarness, startAnalytics, type Tenant } from "./harness.ts";
import { Code } from "@connectrpc/connect";
import { ApiKeyKind } from "#gen/vane/identity/v1/identity_pb.js";
import { IdentityService } from "#gen/vane/identity/v1/identity_service_pb.js";
import { apiKeyBanditCredentials } from "../bandit-runner.ts";

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe("bandit", () => {
  let h: AnalyticsHarness;
  let t: Tenant;
  beforeAll(async () => {
    // A schedule too slow to fire during the test: the test calls tick() itself.
    h = await startAnalytics({ bandit: { tickMs: 3_600_000 } });
    t = await h.seedTenant();
  });
  afterAll(() => h?.close());

  it("re-weights the rollout toward the better arm through the flags API, audited", async () => {
    const flags = h.client(FlagService, t.ownerToken);
    await flags.createFlag({
      projectId: t.projectId,
      key: "hero",
      name: "hero",
      type: FlagType.STRING,
      variants: ["control", "bold"].map((key) => ({ key, value: fromJson(ValueSchema, key) })),
    });
    await flags.updateFlagEnvironment({ environmentId: t.environmentId, flagKey: "hero", enabled: true, defaultVariant: "control", rules: [] });
    const x = h.client(ExperimentService, t.ownerToken);
    await x.createMetric({
      projectId: t.projectId,
      key: "signup",
      name: "Signed up",
      eventName: "signup",
      kind: MetricKind.CONVERSION,
      direction: Direction.INCREASE,
    });
    const created = (
      await x.createExperiment({
        projectId: t.projectId,
        environmentId: t.environmentId,
        flagKey: "hero",
        key: "hero-bandit",
        name: "Hero bandit",
        variants: [
          { variant: "control", weight: 50 },
          { variant: "bold", weight: 50 },
        ],
        primaryMetricKeys: ["signup"],
        bandit: { enabled: true, intervalSeconds: 60, minSharePercent: 10 },
      })
    ).experiment!;
    const started = (await x.startExperiment({ id: created.id })).experiment!;
    const startMs = Number(started.startTime!.seconds) * 1000;

    // Before an interval has passed, nothing happens.
    expect(await h.analytics.bandit!.tick(new Date(startMs + 30_000))).toEqual([]);

    // 300 units per arm; "bold" converts at 40 %, control at 10 %.
    const units = Array.from({ length: 600 }, (_, i) => ({ key: `u${i}`, variant: i % 2 ? "bold" : "control" }));
    await Promise.all(
      units.map((u) =>
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
              payload: { case: "exposure", value: { flagKey: "hero", variant: u.variant, experimentId: created.id, unitKey: u.key, time: timestampNow() } },
            }),
          ),
        ),
      ),
    );
    const serverToken = await h.sign({ sub: randomUUID(), org: t.orgId, prj: t.projectId, env: t.environmentId, kind: "server" });
    const converted = units.filter((u, i) => (u.variant === "bold" ? i % 10 < 8 : i % 10 < 2) && i % 2 === (u.variant === "bold" ? 1 : 0));
    await h.client(EventService, serverToken).track({ events: converted.map((u) => ({ name: "signup", unitKey: u.key })) });
    for (let i = 0; ; i++) {
      const info = await h.bus.jsm.consumers.info(h.eventsStream, h.analytics.pipeline.consumerName);
      if (info.num_pending === 0 && info.num_ack_pending === 0) break;
      if (i > 200) throw new Error("pipeline did not catch up");
      await sleep(100);
    }
    const results = (await x.getResults({ id: created.id })).results!;
    expect(results.metrics[0].variants.map((v) => v.units)).toEqual([300n, 300n]);
    expect(results.warnings.map((w) => w.code)).toContain("bandit_reweighting");

    const runAt = new Date(startMs + 61_000);
    const [run, ...more] = await h.analytics.bandit!.tick(runAt);
    expect(more).toEqual([]);
    expect(run.error).toBe("");
    expect(run.probabilityBest[1]).toBeGreaterThan(0.99);
    expect(run.weights[0]).toBeCloseTo(0.1, 2); // the floor
    expect(run.weights[1]).toBeCloseTo(0.9, 2);

    const env = (await flags.getFlag({ projectId: t.projectId, key: "hero" })).environments.find((e) => e.environmentId === t.environmentId)!;
    const outcome = env.rules[0].outcome?.kind;
    expect(outcome?.case).toBe("rollout");
    if (outcome?.case === "rollout") {
      const [control, bold] = outcome.value.variants;
      expect([control.variant, bold.variant]).toEqual(["control", "bold"]);
      expect(bold.weight).toBeGreaterThan(control.weight);
      expect(control.weight / (control.weight + bold.weight)).toBeGreaterThanOrEqual(0.099);
      expect(outcome.value.experimentId).toBe(created.id);
    }
    const { entries } = await flags.listAuditEntries({ projectId: t.projectId, flagKey: "hero" });
    expect(entries.filter((e) => e.reason === "bandit re-weighting of experiment hero-bandit")).toHaveLength(1);

    // Not due again until another interval has passed; then it runs again.
    expect(await h.analytics.bandit!.tick(new Date(runAt.getTime() + 30_000))).toEqual([]);
    expect(await h.analytics.bandit!.tick(new Date(runAt.getTime() + 61_000))).toHaveLength(1);
    const runs = await h.analytics.database.db.selectFrom("bandit_runs").selectAll().where("experiment_id", "=", created.id).execute();
    expect(runs.map((r) => r.error)).toEqual(["", ""]);
    expect(runs.every((r) => r.flag_version !== null)).toBe(true);
  });
  it("authenticates with an API key exchanged at identity when it runs on its own, reusing the token", async () => {
    const identity = h.client(IdentityService, t.ownerToken);
    const { secret } = await identity.createApiKey({ environmentId: t.environmentId, kind: ApiKeyKind.ADMIN, name: "bandit" });
    const baseUrl = `http://127.0.0.1:${h.running.port}`;
    const credentials = apiKeyBanditCredentials({ identityUrl: baseUrl, apiKey: secret });
    const header = await credentials({ organizationId: t.orgId, projectId: t.projectId });
    expect(header).toMatch(/^Bearer ey/);
    expect(await credentials({ organizationId: t.orgId, projectId: t.projectId })).toBe(header);
    const flags = h.client(FlagService, header.slice("Bearer ".length));
    await expect(flags.listFlags({ projectId: t.projectId })).resolves.toBeDefined();
    const wrong = apiKeyBanditCredentials({ identityUrl: baseUrl, apiKey: "vane_admin_not-a-key" });
    await expect(wrong({ organizationId: t.orgId, projectId: t.projectId })).rejects.toMatchObject({ code: Code.Unauthenticated });
  });
});
