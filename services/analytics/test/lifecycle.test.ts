/**
 * Starting and stopping experiments against the real flags service: the flag's previous state
 * (enabled included) comes back on a stop without shipping, two concurrent starts on one flag
 * have exactly one winner, and a failure between the flag change and the experiment's own update
 * is resumed by retrying; a stop issued while a start is writing the flag waits for it.
 */
import { fromJson } from "@bufbuild/protobuf";
import { ValueSchema } from "@bufbuild/protobuf/wkt";
import { Code, ConnectError } from "@connectrpc/connect";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ExperimentService } from "#gen/vane/experiments/v1/experiment_service_pb.js";
import { Direction, ExperimentStatus, MetricKind } from "#gen/vane/experiments/v1/experiments_pb.js";
import { FlagService } from "#gen/vane/flags/v1/flag_service_pb.js";
import { FlagType, Operator } from "#gen/vane/flags/v1/flags_pb.js";
import { type AnalyticsHarness, startAnalytics, type Tenant } from "./harness.ts";

const variants = ["control", "treatment"].map((key) => ({ key, value: fromJson(ValueSchema, key) }));
const two = [
  { variant: "control", weight: 1 },
  { variant: "treatment", weight: 1 },
];

describe("experiment start and stop", () => {
  let h: AnalyticsHarness;
  let t: Tenant;
  /** Set to make the next flag update fail after flags applied it (as if the reply was lost). */
  let loseNextUpdateReply = false;
  /** Set to hold the next flag update this long before sending it. */
  let delayNextUpdateMs = 0;

  beforeAll(async () => {
    h = await startAnalytics({
      wrapFlags: (real) => ({
        getFlag: (req, caller) => real.getFlag(req, caller),
        async updateFlagEnvironment(req, caller) {
          const delay = delayNextUpdateMs;
          delayNextUpdateMs = 0;
          if (delay) await new Promise((r) => setTimeout(r, delay));
          const r = await real.updateFlagEnvironment(req, caller);
          if (loseNextUpdateReply) {
            loseNextUpdateReply = false;
            throw new ConnectError("connection reset after the flag was updated", Code.Unavailable);
          }
          return r;
        },
      }),
    });
    t = await h.seedTenant();
    await h.client(ExperimentService, t.ownerToken).createMetric({
      projectId: t.projectId,
      key: "converted",
      name: "Converted",
      eventName: "purchase",
      kind: MetricKind.CONVERSION,
      direction: Direction.INCREASE,
    });
  });
  afterAll(() => h?.close());

  async function flagWith(key: string, enabled: boolean) {
    const flags = h.client(FlagService, t.ownerToken);
    await flags.createFlag({ projectId: t.projectId, key, name: key, type: FlagType.STRING, variants });
    await flags.updateFlagEnvironment({
      environmentId: t.environmentId,
      flagKey: key,
      enabled,
      defaultVariant: "control",
      rules: [{ outcome: { kind: { case: "variant", value: "treatment" } } }],
    });
  }
  const envOf = async (key: string) =>
    (await h.client(FlagService, t.ownerToken).getFlag({ projectId: t.projectId, key })).environments.find((e) => e.environmentId === t.environmentId)!;
  const experiment = async (flagKey: string, key: string) =>
    (
      await h
        .client(ExperimentService, t.ownerToken)
        .createExperiment({ projectId: t.projectId, environmentId: t.environmentId, flagKey, key, name: key, variants: two, primaryMetricKeys: ["converted"] })
    ).experiment!;

  it("restores the flag's enabled state and rules on a stop without shipping", async () => {
    await flagWith("dark", false);
    const x = h.client(ExperimentService, t.ownerToken);
    const e = await experiment("dark", "dark-1");
    await x.startExperiment({ id: e.id });
    expect((await envOf("dark")).enabled).toBe(true);
    await x.stopExperiment({ id: e.id });
    const after = await envOf("dark");
    expect(after.enabled).toBe(false);
    expect(after.rules.map((r) => r.outcome?.kind)).toEqual([{ case: "variant", value: "treatment" }]);
  });

  it("lets exactly one of two concurrent starts on one flag win", async () => {
    await flagWith("race", true);
    const x = h.client(ExperimentService, t.ownerToken);
    const [a, b] = [await experiment("race", "race-a"), await experiment("race", "race-b")];
    const outcomes = await Promise.allSettled([x.startExperiment({ id: a.id }), x.startExperiment({ id: b.id })]);
    expect(outcomes.filter((o) => o.status === "fulfilled")).toHaveLength(1);
    const lost = outcomes.find((o) => o.status === "rejected") as PromiseRejectedResult;
    expect(ConnectError.from(lost.reason).code).toBe(Code.FailedPrecondition);
    const statuses = await Promise.all([a, b].map(async (e) => (await x.getExperiment({ id: e.id })).experiment!.status));
    expect(statuses.sort()).toEqual([ExperimentStatus.DRAFT, ExperimentStatus.RUNNING].sort());
    // The experiment's rule goes ahead of the flag's catch-all rule, which stays.
    expect((await envOf("race")).rules.map((r) => r.id.startsWith("experiment-") || r.outcome?.kind.value)).toEqual([true, "treatment"]);
  });

  it("resumes a start and a stop that failed after the flag changed", async () => {
    await flagWith("flaky", false);
    const x = h.client(ExperimentService, t.ownerToken);
    const e = await experiment("flaky", "flaky-1");
    loseNextUpdateReply = true;
    await expect(x.startExperiment({ id: e.id })).rejects.toMatchObject({ code: Code.Unavailable });
    expect((await x.getExperiment({ id: e.id })).experiment!.status).toBe(ExperimentStatus.STARTING);
    expect((await envOf("flaky")).rules[0].id).toBe(`experiment-${e.id}`);
    // Another experiment cannot take the flag meanwhile.
    const other = await experiment("flaky", "flaky-2");
    await expect(x.startExperiment({ id: other.id })).rejects.toMatchObject({ code: Code.FailedPrecondition });
    // The retry finds the flag already configured and finishes without touching it again.
    const version = (await envOf("flaky")).version;
    expect((await x.startExperiment({ id: e.id })).experiment!.status).toBe(ExperimentStatus.RUNNING);
    expect((await envOf("flaky")).version).toBe(version);

    loseNextUpdateReply = true;
    await expect(x.stopExperiment({ id: e.id, shipVariant: "treatment" })).rejects.toMatchObject({ code: Code.Unavailable });
    expect((await x.getExperiment({ id: e.id })).experiment!.status).toBe(ExperimentStatus.STOPPING);
    await expect(x.stopExperiment({ id: e.id, shipVariant: "control" })).rejects.toMatchObject({ code: Code.FailedPrecondition });
    const stopped = (await x.stopExperiment({ id: e.id })).experiment!;
    expect([stopped.status, stopped.shippedVariant]).toEqual([ExperimentStatus.STOPPED, "treatment"]);
    const after = await envOf("flaky");
    expect([after.enabled, after.defaultVariant, after.rules.length]).toEqual([true, "treatment", 0]);
  });

  it("keeps targeted rules ahead of the experiment and edits made while it runs; ships behind them", async () => {
    const flags = h.client(FlagService, t.ownerToken);
    const x = h.client(ExperimentService, t.ownerToken);
    await flags.createFlag({ projectId: t.projectId, key: "kept", name: "kept", type: FlagType.STRING, variants });
    const attr = (attribute: string, value: string) => ({
      kind: { case: "attribute" as const, value: { attribute, operator: Operator.EQUALS, values: [fromJson(ValueSchema, value)] } },
    });
    const staff = { id: "staff", conditions: [attr("team", "staff")], outcome: { kind: { case: "variant" as const, value: "treatment" } } };
    const everyone = { id: "everyone", outcome: { kind: { case: "variant" as const, value: "control" } } };
    await flags.updateFlagEnvironment({ environmentId: t.environmentId, flagKey: "kept", enabled: true, defaultVariant: "control", rules: [staff, everyone] });
    const ids = async () => (await envOf("kept")).rules.map((r) => r.id);

    const first = await experiment("kept", "kept-1");
    await x.startExperiment({ id: first.id });
    expect(await ids()).toEqual(["staff", `experiment-${first.id}`, "everyone"]);
    // Someone adds a kill switch while it runs.
    const running = await envOf("kept");
    const blocked = { id: "blocked", conditions: [attr("country", "xx")], outcome: { kind: { case: "variant" as const, value: "control" } } };
    await flags.updateFlagEnvironment({
      environmentId: t.environmentId,
      flagKey: "kept",
      expectedVersion: running.version,
      enabled: true,
      defaultVariant: "control",
      rules: [blocked, ...running.rules],
    });
    await x.stopExperiment({ id: first.id });
    expect(await ids()).toEqual(["blocked", "staff", "everyone"]);

    const second = await experiment("kept", "kept-2");
    await x.startExperiment({ id: second.id });
    expect(await ids()).toEqual(["blocked", "staff", `experiment-${second.id}`, "everyone"]);
    await x.stopExperiment({ id: second.id, shipVariant: "treatment" });
    const shipped = await envOf("kept");
    expect([shipped.enabled, shipped.defaultVariant, shipped.rules.map((r) => r.id)]).toEqual([true, "treatment", ["blocked", "staff"]]);
  });

  it("makes a stop wait for a start that is writing the flag", async () => {
    await flagWith("slow", false);
    const x = h.client(ExperimentService, t.ownerToken);
    const e = await experiment("slow", "slow-1");
    delayNextUpdateMs = 400;
    const starting = x.startExperiment({ id: e.id });
    await new Promise((r) => setTimeout(r, 150)); // the start has read the flag and holds its write
    const stopped = await x.stopExperiment({ id: e.id });
    expect((await starting).experiment!.status).toBe(ExperimentStatus.RUNNING);
    expect(stopped.experiment!.status).toBe(ExperimentStatus.STOPPED);
    const after = await envOf("slow");
    expect(after.enabled).toBe(false);
    expect(after.rules.map((r) => r.id)).not.toContain(`experiment-${e.id}`);
  });
});
