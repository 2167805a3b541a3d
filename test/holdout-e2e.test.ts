/**
 * A holdout end to end on the real `npm start`: two flags — one with a targeting rule, one
 * running an experiment — get a 20 % holdout. Evaluated through vane.evaluation.v1, exactly the
 * units in the holdout's slice (computed independently from the salted hash) get each flag's
 * default, on both flags, and are never enrolled in the experiment; everyone else is served as
 * before. Conversions through the collector; GetHoldoutResults compares "holdout" with "general"
 * unit for unit. Each flag change is in the flags audit log under the caller, with the reason.
 * Bad input names the field: an unknown flag, a share out of range, an unknown metric.
 */
import { fromJson } from "@bufbuild/protobuf";
import { ValueSchema } from "@bufbuild/protobuf/wkt";
import { Code, type Client } from "@connectrpc/connect";
import type { DescService } from "@bufbuild/protobuf";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { EvaluationService, Reason } from "#gen/vane/evaluation/v1/evaluation_service_pb.js";
import { EventService } from "#gen/vane/events/v1/event_service_pb.js";
import { ExperimentService } from "#gen/vane/experiments/v1/experiment_service_pb.js";
import { Direction, MetricKind } from "#gen/vane/experiments/v1/experiments_pb.js";
import { FlagService } from "#gen/vane/flags/v1/flag_service_pb.js";
import { FlagType } from "#gen/vane/flags/v1/flags_pb.js";
import { AuthService } from "#gen/vane/identity/v1/auth_service_pb.js";
import { IdentityService } from "#gen/vane/identity/v1/identity_service_pb.js";
import { ApiKeyKind } from "#gen/vane/identity/v1/identity_pb.js";
import { isHeldOut } from "../services/evaluator/holdout-exposures.ts";
import { eventually, failure } from "#test/support/harness.ts";
import { grpcClient, startVane, type VaneProcess } from "./vane-process.ts";

const UNITS = 800;

let vane: VaneProcess;
beforeAll(() => {
  vane = startVane();
});
afterAll(() => vane?.cleanup());

async function refused(p: Promise<unknown>, code: Code, text: RegExp) {
  const err = await failure(p);
  expect(err.code).toBe(code);
  expect(err.rawMessage).toMatch(text);
}

describe("a holdout through the public APIs of npm start", () => {
  it("serves held-out units the default on every flag, keeps them out of experiments, and measures them against everyone else", async () => {
    const { baseUrl, adminKey } = await vane.started();
    const client = <S extends DescService>(service: S, token?: string): Client<S> => grpcClient(baseUrl, service, token);
    const exchange = async (apiKey: string) => (await client(AuthService).exchangeApiKey({ apiKey })).accessToken;
    const admin = await exchange(adminKey);
    const identity = client(IdentityService, admin);
    const { principal } = await client(AuthService, admin).whoAmI({});
    const [project] = (await identity.listProjects({ organizationId: principal!.organizationId })).projects;
    const env = (await identity.listEnvironments({ projectId: project.id })).environments.find((e) => e.key === "development")!;

    const flags = client(FlagService, admin);
    const variants = ["off", "on"].map((key) => ({ key, value: fromJson(ValueSchema, key) }));
    for (const key of ["new-search", "new-checkout"]) await flags.createFlag({ projectId: project.id, key, name: key, type: FlagType.STRING, variants });
    // new-search: launched to everyone by a rule; new-checkout: an experiment.
    await flags.updateFlagEnvironment({
      environmentId: env.id,
      flagKey: "new-search",
      enabled: true,
      defaultVariant: "off",
      rules: [{ id: "launch", outcome: { kind: { case: "variant", value: "on" } } }],
    });
    await flags.updateFlagEnvironment({ environmentId: env.id, flagKey: "new-checkout", enabled: true, defaultVariant: "off" });
    const experiments = client(ExperimentService, admin);
    await experiments.createMetric({
      projectId: project.id,
      key: "bought",
      name: "Bought",
      eventName: "buy",
      kind: MetricKind.CONVERSION,
      direction: Direction.INCREASE,
    });
    const { experiment } = await experiments.createExperiment({
      projectId: project.id,
      environmentId: env.id,
      flagKey: "new-checkout",
      key: "checkout-test",
      name: "Checkout",
      variants: [
        { variant: "off", weight: 1 },
        { variant: "on", weight: 1 },
      ],
      primaryMetricKeys: ["bought"],
    });
    await experiments.startExperiment({ id: experiment!.id });

    const base = {
      projectId: project.id,
      environmentId: env.id,
      key: "q1-holdout",
      name: "Q1 holdout",
      percent: 20,
      flagKeys: ["new-search", "new-checkout"],
      metricKeys: ["bought"],
    };
    await refused(experiments.createHoldout({ ...base, flagKeys: ["new-search", "nope"] }), Code.InvalidArgument, /flag_keys: flag "nope" does not exist/);
    await refused(experiments.createHoldout({ ...base, percent: 60 }), Code.InvalidArgument, /percent/);
    await refused(experiments.createHoldout({ ...base, percent: 0 }), Code.InvalidArgument, /percent/);
    await refused(experiments.createHoldout({ ...base, metricKeys: ["missing"] }), Code.InvalidArgument, /metric_keys: metrics missing do not exist/);
    const { holdout } = await experiments.createHoldout({ ...base, reason: "measure Q1 launches" });
    expect(holdout!.percent).toBe(20);
    await refused(experiments.createHoldout(base), Code.AlreadyExists, /q1-holdout/);

    // Audited like any flag change, under the caller, with the reason.
    for (const flagKey of base.flagKeys) {
      const { entries } = await flags.listAuditEntries({ projectId: project.id, flagKey });
      expect(entries.some((e) => e.reason === "measure Q1 launches")).toBe(true);
    }

    const { secret: serverKey } = await identity.createApiKey({ environmentId: env.id, kind: ApiKeyKind.SERVER, name: "backend" });
    const server = await exchange(serverKey);
    const evaluation = client(EvaluationService, server);
    const evaluate = async (flagKey: string, targetingKey: string) => (await evaluation.evaluate({ flagKey, context: { targetingKey } })).evaluation!;
    const keys = Array.from({ length: UNITS }, (_, i) => `user-${i}`);
    const held = new Set(keys.filter((k) => isHeldOut(holdout!.id, 2000, k)));
    const probe = [...held][0];
    await eventually(async () => (await evaluate("new-search", probe)).variant === "off", 20_000, "the holdout served");

    const checkoutVariant = new Map<string, string>();
    for (let i = 0; i < keys.length; i += 50)
      await Promise.all(
        keys.slice(i, i + 50).map(async (k) => {
          const [search, checkout] = await Promise.all([evaluate("new-search", k), evaluate("new-checkout", k)]);
          if (held.has(k)) {
            expect([search.variant, search.reason, checkout.variant, checkout.reason]).toEqual(["off", Reason.DEFAULT, "off", Reason.DEFAULT]);
          } else {
            expect(search.variant).toBe("on");
            expect(checkout.reason).toBe(Reason.TARGETING_MATCH); // the experiment's assignment
            checkoutVariant.set(k, checkout.variant);
          }
        }),
      );
    // A share near the one asked (its exact binomial bounds are in the engine's unit test).
    expect(held.size / UNITS).toBeGreaterThan(0.15);
    expect(held.size / UNITS).toBeLessThan(0.25);

    // Launches help: everyone else buys more.
    const buyers = keys.filter((k, i) => (held.has(k) ? i % 10 < 1 : i % 10 < 4));
    const track = client(EventService, server);
    await track.track({ events: buyers.map((unitKey) => ({ name: "buy", unitKey })) });

    const r = await eventually(
      async () => {
        const res = (await experiments.getHoldoutResults({ id: holdout!.id })).results!;
        const [h, g] = res.metrics[0].variants;
        const buys = (v: typeof h) => Math.round(v.mean * Number(v.units));
        const ok =
          Number(h.units) === held.size &&
          Number(g.units) === UNITS - held.size &&
          buys(h) === buyers.filter((k) => held.has(k)).length &&
          buys(g) === buyers.filter((k) => !held.has(k)).length;
        return ok ? res : undefined;
      },
      60_000,
      "every holdout exposure and purchase counted",
    );
    const [h, g] = r.metrics[0].variants;
    expect([h.variant, g.variant]).toEqual(["holdout", "general"]);
    expect(g.absoluteLift).toBeGreaterThan(0.2);
    expect(r.sampleRatio!.expectedShares).toEqual([0.2, 0.8]);

    // Held-out units were never enrolled: the experiment counts exactly the others.
    const x = await eventually(
      async () => {
        const res = (await experiments.getResults({ id: experiment!.id })).results!;
        return res.metrics[0].variants.reduce((a, v) => a + Number(v.units), 0) === checkoutVariant.size ? res : undefined;
      },
      60_000,
      "the experiment's exposures",
    );
    for (const v of x.metrics[0].variants) expect(Number(v.units)).toBe([...checkoutVariant.values()].filter((c) => c === v.variant).length);

    // The holdout is not an experiment.
    expect((await experiments.listExperiments({ projectId: project.id })).experiments.map((e) => e.key)).toEqual(["checkout-test"]);
    await refused(experiments.getExperiment({ id: holdout!.id }), Code.NotFound, /experiment/);
  }, 150_000);
});
