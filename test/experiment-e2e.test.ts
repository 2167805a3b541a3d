/**
 * An experiment end to end through public APIs only, on the real `npm start` entry point: the
 * printed admin credential creates a flag, a metric and an experiment and starts it; a server key
 * evaluates the flag for many units through vane.evaluation.v1 (the evaluator publishes the
 * exposures), conversions go through the collector with a better rate in one arm, and the results
 * read back show exactly the units the evaluations assigned, a positive lift, and no sample-ratio
 * mismatch.
 */
import { fromJson } from "@bufbuild/protobuf";
import { ValueSchema } from "@bufbuild/protobuf/wkt";
import { type Client, createClient, type Interceptor } from "@connectrpc/connect";
import { createGrpcTransport } from "@connectrpc/connect-node";
import type { DescService } from "@bufbuild/protobuf";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { EvaluationService, Reason } from "#gen/vane/evaluation/v1/evaluation_service_pb.js";
import { EventService } from "#gen/vane/events/v1/event_service_pb.js";
import { ExperimentService } from "#gen/vane/experiments/v1/experiment_service_pb.js";
import { Direction, ExperimentStatus, MetricKind, type Results } from "#gen/vane/experiments/v1/experiments_pb.js";
import { FlagService } from "#gen/vane/flags/v1/flag_service_pb.js";
import { FlagType } from "#gen/vane/flags/v1/flags_pb.js";
import { AuthService } from "#gen/vane/identity/v1/auth_service_pb.js";
import { IdentityService } from "#gen/vane/identity/v1/identity_service_pb.js";
import { ApiKeyKind } from "#gen/vane/identity/v1/identity_pb.js";
import { startVane, type VaneProcess } from "./vane-process.ts";

const UNITS = 1200;
/** Conversion rates by arm: the treatment is clearly better. */
const RATE: Record<string, number> = { control: 0.2, treatment: 0.4 };
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

let vane: VaneProcess;
beforeAll(() => {
  vane = startVane();
});
afterAll(() => vane?.cleanup());

describe("an experiment through the public APIs of npm start", () => {
  it("assigns by evaluation, counts tracked conversions, and shows the better arm", async () => {
    const { baseUrl, adminKey } = await vane.started();
    const transport = (token?: string) => {
      const auth: Interceptor = (next) => (req) => {
        if (token) req.header.set("authorization", `Bearer ${token}`);
        return next(req);
      };
      return createGrpcTransport({ baseUrl, interceptors: [auth] });
    };
    const client = <S extends DescService>(service: S, token?: string): Client<S> => createClient(service, transport(token));
    const exchange = async (apiKey: string) => (await client(AuthService).exchangeApiKey({ apiKey })).accessToken;

    const admin = await exchange(adminKey);
    const identity = client(IdentityService, admin);
    const { principal } = await client(AuthService, admin).whoAmI({});
    const [project] = (await identity.listProjects({ organizationId: principal!.organizationId })).projects;
    const env = (await identity.listEnvironments({ projectId: project.id })).environments.find((e) => e.key === "development")!;

    const flags = client(FlagService, admin);
    await flags.createFlag({
      projectId: project.id,
      key: "checkout-flow",
      name: "Checkout flow",
      type: FlagType.STRING,
      variants: ["control", "treatment"].map((key) => ({ key, value: fromJson(ValueSchema, key) })),
    });
    await flags.updateFlagEnvironment({ environmentId: env.id, flagKey: "checkout-flow", enabled: true, defaultVariant: "control" });

    const experiments = client(ExperimentService, admin);
    await experiments.createMetric({
      projectId: project.id,
      key: "purchased",
      name: "Purchased",
      eventName: "purchase",
      kind: MetricKind.CONVERSION,
      direction: Direction.INCREASE,
    });
    const { experiment } = await experiments.createExperiment({
      projectId: project.id,
      environmentId: env.id,
      flagKey: "checkout-flow",
      key: "one-page-checkout",
      name: "One-page checkout",
      hypothesis: "One page converts better than three",
      variants: [
        { variant: "control", weight: 50 },
        { variant: "treatment", weight: 50 },
      ],
      primaryMetricKeys: ["purchased"],
    });
    expect((await experiments.startExperiment({ id: experiment!.id, reason: "e2e" })).experiment!.status).toBe(ExperimentStatus.RUNNING);

    const { secret: serverKey } = await identity.createApiKey({ environmentId: env.id, kind: ApiKeyKind.SERVER, name: "e2e backend" });
    const server = await exchange(serverKey);
    const evaluation = client(EvaluationService, server);
    const evaluate = async (unitKey: string) => (await evaluation.evaluate({ flagKey: "checkout-flow", context: { targetingKey: unitKey } })).evaluation!;

    // The evaluator learns of the start through the snapshot bucket: wait for the rollout to serve.
    for (let i = 0; (await evaluate("probe")).reason !== Reason.TARGETING_MATCH; i++) {
      if (i > 100) throw new Error("the evaluator never served the experiment's rollout");
      await sleep(100);
    }
    const assigned = new Map<string, string>();
    const keys = Array.from({ length: UNITS }, (_, i) => `customer-${i}`);
    for (let i = 0; i < keys.length; i += 50) {
      await Promise.all(
        keys.slice(i, i + 50).map(async (k) => {
          const e = await evaluate(k);
          expect(e.reason).toBe(Reason.TARGETING_MATCH);
          assigned.set(k, e.variant);
        }),
      );
    }
    assigned.set("probe", (await evaluate("probe")).variant);
    const expectedUnits = (v: string) => [...assigned.values()].filter((x) => x === v).length;

    // Conversions through the collector, at each arm's rate (deterministic per unit).
    const converted = [...assigned].filter(([k, v]) => (Number(k.split("-")[1] ?? 0) * 0.6180339887) % 1 < RATE[v]);
    const track = client(EventService, server);
    for (let i = 0; i < converted.length; i += 500) {
      const r = await track.track({ events: converted.slice(i, i + 500).map(([unitKey]) => ({ name: "purchase", unitKey, value: 1 })) });
      expect(r.rejected).toEqual([]);
    }
    const expectedConversions = (v: string) => converted.filter(([, x]) => x === v).length;

    // Results once the pipeline has seen every exposure and every conversion.
    let results: Results | undefined;
    for (let i = 0; ; i++) {
      results = (await experiments.getResults({ id: experiment!.id })).results!;
      const [c, t] = results.metrics[0].variants;
      const done = (v: typeof c) => Number(v.units) === expectedUnits(v.variant) && Math.round(v.mean * Number(v.units)) === expectedConversions(v.variant);
      if (done(c) && done(t)) break;
      if (i > 150) throw new Error(`results never caught up: ${JSON.stringify(results.metrics[0].variants.map((v) => [v.variant, Number(v.units), v.mean]))}`);
      await sleep(200);
    }
    const [control, treatment] = results.metrics[0].variants;
    expect([control.variant, treatment.variant]).toEqual(["control", "treatment"]);
    expect(results.sampleRatio!.observedUnits).toEqual([BigInt(expectedUnits("control")), BigInt(expectedUnits("treatment"))]);
    // The split is random (the experiment's id seeds it): about 1 run in 1,000 is a true mismatch at
    // p < 0.001. Check the verdict against the counts instead: |z| > 3.2905 ⇔ chi-square p < 0.001.
    const [c, t] = [expectedUnits("control"), expectedUnits("treatment")];
    const mismatch = Math.abs(t - c) / Math.sqrt(c + t) > 3.2905267;
    expect(results.sampleRatio!.mismatch).toBe(mismatch);
    expect(results.warnings.map((w) => w.code)).toEqual(mismatch ? ["sample_ratio_mismatch"] : []);
    expect(results.conflictingExposures).toBe(0n);
    expect(treatment.relativeLift).toBeGreaterThan(0.5);
    expect(treatment.absoluteLiftInterval!.lower).toBeGreaterThan(0);
    expect(treatment.chanceToBeatControl).toBeGreaterThan(0.99);
  }, 90_000);
});
