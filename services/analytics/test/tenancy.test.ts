import { randomUUID } from "node:crypto";
import { fromJson } from "@bufbuild/protobuf";
import { ValueSchema } from "@bufbuild/protobuf/wkt";
import { Code } from "@connectrpc/connect";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ExperimentService } from "#gen/vane/experiments/v1/experiment_service_pb.js";
import { Direction, ExperimentStatus, MetricKind } from "#gen/vane/experiments/v1/experiments_pb.js";
import { FlagService } from "#gen/vane/flags/v1/flag_service_pb.js";
import { FlagType } from "#gen/vane/flags/v1/flags_pb.js";
import { AuthService } from "#gen/vane/identity/v1/auth_service_pb.js";
import { ApiKeyKind } from "#gen/vane/identity/v1/identity_pb.js";
import { IdentityService } from "#gen/vane/identity/v1/identity_service_pb.js";
import { assertTenancyMatrix, type TenancyDimension } from "#test/support/tenancy.ts";
import { type AnalyticsHarness, startAnalytics, type Tenant } from "./harness.ts";

const variants = ["a", "b"].map((key) => ({ key, value: fromJson(ValueSchema, key) }));
const arms = [
  { variant: "a", weight: 1 },
  { variant: "b", weight: 1 },
];

describe("tenancy", () => {
  let h: AnalyticsHarness;
  let victim: Tenant;
  let attacker: Tenant;
  let draftId: string;
  let runningId: string;
  beforeAll(async () => {
    h = await startAnalytics();
    victim = await h.seedTenant();
    attacker = await h.seedTenant();
    const flags = h.client(FlagService, victim.ownerToken);
    for (const key of ["f1", "f2"]) await flags.createFlag({ projectId: victim.projectId, key, name: key, type: FlagType.STRING, variants });
    const x = h.client(ExperimentService, victim.ownerToken);
    await x.createMetric({ projectId: victim.projectId, key: "m", name: "m", eventName: "e", kind: MetricKind.COUNT, direction: Direction.INCREASE });
    const base = { projectId: victim.projectId, environmentId: victim.environmentId, name: "x", variants: arms, primaryMetricKeys: ["m"] };
    draftId = (await x.createExperiment({ ...base, key: "draft", flagKey: "f1" })).experiment!.id;
    runningId = (await x.createExperiment({ ...base, key: "running", flagKey: "f2" })).experiment!.id;
    await x.startExperiment({ id: runningId });
  });
  afterAll(() => h?.close());

  // As each kind of foreign principal, against the victim's ids and ids that never existed:
  // nothing distinguishes "foreign" from "absent".
  for (const as of ["owner", "admin key", "personal key"] as const) {
    it(`hides every analytics object of another organization from its ${as}`, async () => {
      let token = attacker.ownerToken;
      if (as !== "owner") {
        const created = await h
          .client(IdentityService, attacker.ownerToken)
          .createApiKey(
            as === "admin key" ? { environmentId: attacker.environmentId, kind: ApiKeyKind.ADMIN, name: "a" } : { kind: ApiKeyKind.PERSONAL, name: "p" },
          );
        token = (await h.client(AuthService).exchangeApiKey({ apiKey: created.secret })).accessToken;
      }
      const x = h.client(ExperimentService, token);
      const absent = { projectId: randomUUID(), environmentId: randomUUID(), draftId: randomUUID(), runningId: randomUUID() };
      for (const target of [{ projectId: victim.projectId, environmentId: victim.environmentId, draftId, runningId }, absent]) {
        const { projectId, environmentId } = target;
        await assertTenancyMatrix(ExperimentService, {
          createMetric: {
            expect: Code.NotFound,
            call: () => x.createMetric({ projectId, key: "k", name: "k", eventName: "e", kind: MetricKind.COUNT, direction: Direction.INCREASE }),
          },
          listMetrics: { expect: Code.NotFound, call: () => x.listMetrics({ projectId }) },
          // An admin key is bound to its environment: another one is refused before any lookup.
          createExperiment: {
            expect: as === "admin key" ? Code.PermissionDenied : Code.NotFound,
            call: () => x.createExperiment({ projectId, environmentId, flagKey: "f1", key: "k", name: "k", variants: arms, primaryMetricKeys: ["m"] }),
          },
          getExperiment: { expect: Code.NotFound, call: () => x.getExperiment({ id: target.draftId }) },
          listExperiments: { expect: Code.NotFound, call: () => x.listExperiments({ projectId }) },
          startExperiment: { expect: Code.NotFound, call: () => x.startExperiment({ id: target.draftId }) },
          stopExperiment: { expect: Code.NotFound, call: () => x.stopExperiment({ id: target.runningId, shipVariant: "b" }) },
          getResults: { expect: Code.NotFound, call: () => x.getResults({ id: target.runningId }) },
          getResultsTimeline: { expect: Code.NotFound, call: () => x.getResultsTimeline({ id: target.runningId }) },
          updateExperimentSettings: {
            expect: Code.NotFound,
            call: () => x.updateExperimentSettings({ id: target.runningId, expectedVersion: 3n, settings: { sequential: true } }),
          },
          planExperiment: {
            notApplicable: "pure arithmetic over the request: it reads and names no tenant's data",
            check: async () => {
              const plan = await x.planExperiment({
                baseline: { case: "conversionRate", value: 0.1 },
                unitsPerDay: 100,
                arms: 2,
                target: { case: "unitsPerArm", value: 100n },
              });
              expect(plan.unitsPerArm).toBe(100n);
            },
          },
        });
      }
    });
  }

  /**
   * A tenant of its own whose production (protected) holds a draft and a running experiment, and
   * callers: an admin key of staging, an editor, an admin.
   */
  async function productionTenant() {
    const t = await h.seedTenant();
    const flags = h.client(FlagService, t.ownerToken);
    for (const key of ["f1", "f2"]) await flags.createFlag({ projectId: t.projectId, key, name: key, type: FlagType.STRING, variants });
    const x = h.client(ExperimentService, t.ownerToken);
    await x.createMetric({ projectId: t.projectId, key: "m", name: "m", eventName: "e", kind: MetricKind.COUNT, direction: Direction.INCREASE });
    const base = { projectId: t.projectId, environmentId: t.environmentId, name: "x", variants: arms, primaryMetricKeys: ["m"] };
    const draft = (await x.createExperiment({ ...base, key: "draft", flagKey: "f1" })).experiment!.id;
    const running = (await x.createExperiment({ ...base, key: "running", flagKey: "f2" })).experiment!.id;
    await x.startExperiment({ id: running });
    await h.client(IdentityService, t.ownerToken).updateEnvironment({ id: t.environmentId, protected: true });
    const created = await h.client(IdentityService, t.ownerToken).createApiKey({ environmentId: t.stagingId, kind: ApiKeyKind.ADMIN, name: "staging admin" });
    const stagingAdmin = (await h.client(AuthService).exchangeApiKey({ apiKey: created.secret })).accessToken;
    return { t, draft, running, stagingAdmin, editor: (await h.member(t, "editor")).token, admin: (await h.member(t, "admin")).token };
  }

  /** ExperimentService against production; `create` is what creating a draft there gives. */
  async function productionMatrix(
    token: string,
    p: Awaited<ReturnType<typeof productionTenant>>,
    create: Code.PermissionDenied | "allowed",
    dimension: TenancyDimension,
  ) {
    const x = h.client(ExperimentService, token);
    const { projectId, environmentId } = p.t;
    await assertTenancyMatrix(
      ExperimentService,
      {
        createMetric: {
          expect: "allowed",
          call: () => x.createMetric({ projectId, key: "k", name: "k", eventName: "e", kind: MetricKind.COUNT, direction: Direction.INCREASE }),
        },
        listMetrics: { expect: "allowed", call: () => x.listMetrics({ projectId }) },
        createExperiment: {
          expect: create,
          call: () => x.createExperiment({ projectId, environmentId, flagKey: "f1", key: "k", name: "k", variants: arms, primaryMetricKeys: ["m"] }),
        },
        getExperiment: { expect: "allowed", call: () => x.getExperiment({ id: p.draft }) },
        listExperiments: { expect: "allowed", call: () => x.listExperiments({ projectId }) },
        startExperiment: { expect: Code.PermissionDenied, call: () => x.startExperiment({ id: p.draft }) },
        stopExperiment: { expect: Code.PermissionDenied, call: () => x.stopExperiment({ id: p.running, shipVariant: "b" }) },
        getResults: { expect: "allowed", call: () => x.getResults({ id: p.running }) },
        getResultsTimeline: { expect: "allowed", call: () => x.getResultsTimeline({ id: p.running }) },
        // Analysis settings change no flag: whoever may draft there may change them.
        updateExperimentSettings: {
          expect: create,
          call: () => x.updateExperimentSettings({ id: p.draft, expectedVersion: 1n, settings: { sequential: true } }),
        },
        planExperiment: { notApplicable: "pure arithmetic over the request (see the foreign-organization matrix)" },
      },
      dimension,
    );
    // Nothing else moved: the draft is a draft (its settings changed when that was allowed), the running experiment runs.
    const list = (await h.client(ExperimentService, p.t.ownerToken).listExperiments({ projectId })).experiments;
    expect(list.filter((e) => e.key !== "k").map((e) => [e.key, e.version])).toEqual(
      expect.arrayContaining([
        ["draft", create === "allowed" ? 2n : 1n],
        ["running", 3n],
      ]),
    );
  }

  it("keeps an admin key's experiments inside its environment (environment scope)", async () => {
    const p = await productionTenant();
    await productionMatrix(p.stagingAdmin, p, Code.PermissionDenied, "environment scope");
    // In its own environment it runs experiments.
    const x = h.client(ExperimentService, p.stagingAdmin);
    const { experiment } = await x.createExperiment({
      projectId: p.t.projectId,
      environmentId: p.t.stagingId,
      flagKey: "f1",
      key: "staged",
      name: "s",
      variants: arms,
      primaryMetricKeys: ["m"],
    });
    expect((await x.startExperiment({ id: experiment!.id })).experiment?.status).toBe(ExperimentStatus.RUNNING);
  });

  it("lets editors draft but not start or stop experiments in a protected environment (protected environment)", async () => {
    const p = await productionTenant();
    await productionMatrix(p.editor, p, "allowed", "protected environment");
    // An admin starts what the editor drafted.
    const drafted = (await h.client(ExperimentService, p.editor).listExperiments({ projectId: p.t.projectId })).experiments.find((e) => e.key === "k")!;
    expect((await h.client(ExperimentService, p.admin).startExperiment({ id: drafted.id })).experiment?.status).toBe(ExperimentStatus.RUNNING);
  });

  it("refuses server keys and lower roles before any lookup", async () => {
    const server = await h.sign({ sub: randomUUID(), org: victim.orgId, prj: victim.projectId, env: victim.environmentId, kind: "server" });
    const viewer = (await h.member(victim, "viewer")).token;
    const s = h.client(ExperimentService, server);
    const v = h.client(ExperimentService, viewer);
    await expect(s.listExperiments({ projectId: victim.projectId })).rejects.toMatchObject({ code: Code.PermissionDenied });
    await expect(s.getResults({ id: runningId })).rejects.toMatchObject({ code: Code.PermissionDenied });
    await expect(v.stopExperiment({ id: runningId })).rejects.toMatchObject({ code: Code.PermissionDenied });
    await expect(
      v.createExperiment({
        projectId: victim.projectId,
        environmentId: victim.environmentId,
        flagKey: "f1",
        key: "v",
        name: "v",
        variants: arms,
        primaryMetricKeys: ["m"],
      }),
    ).rejects.toMatchObject({
      code: Code.PermissionDenied,
    });
    expect((await v.getResults({ id: runningId })).results?.experimentId).toBe(runningId);
  });

  it("leaves the victim's experiments untouched", async () => {
    const x = h.client(ExperimentService, victim.ownerToken);
    const list = (await x.listExperiments({ projectId: victim.projectId })).experiments;
    // A start moves draft (1) → starting (2) → running (3); nothing the attacker did added to that.
    expect(list.map((e) => [e.key, e.version])).toEqual(
      expect.arrayContaining([
        ["draft", 1n],
        ["running", 3n],
      ]),
    );
    expect((await x.listMetrics({ projectId: victim.projectId })).metrics.map((m) => m.key)).toEqual(["m"]);
  });
});
