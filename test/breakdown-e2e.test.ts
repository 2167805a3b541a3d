/**
 * Dimension breakdowns end to end on the real `npm start`: an experiment chosen with two
 * dimensions, units evaluated through vane.evaluation.v1 with those attributes in their context
 * (the evaluator learns which to copy into exposures from the flag's snapshot), conversions
 * through the collector, and GetResults split by "country": the most populous values apart, the
 * rest pooled as "(other)", units without the attribute as "(none)", every segment's numbers
 * exactly those of its units, p-values corrected across the whole breakdown, and the warning that
 * a breakdown is not the result. Bad input is refused with the field and the limit named.
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
import { adjustPValues } from "../services/analytics/stats/index.ts";
import { eventually, failure } from "#test/support/harness.ts";
import { grpcClient, startVane, type VaneProcess } from "./vane-process.ts";

/** Countries by population: the first three keep their own segment with a limit of 3. */
const COUNTRIES: [string, number][] = [
  ["DE", 240],
  ["US", 200],
  ["FR", 160],
  ["IT", 40],
  ["ES", 30],
];
const NO_COUNTRY = 50;

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

describe("results broken down by a dimension of the exposure context", () => {
  it("splits the units by their first exposure's value, bounded, corrected across the breakdown", async () => {
    const { baseUrl, adminKey } = await vane.started();
    const client = <S extends DescService>(service: S, token?: string): Client<S> => grpcClient(baseUrl, service, token);
    const exchange = async (apiKey: string) => (await client(AuthService).exchangeApiKey({ apiKey })).accessToken;
    const admin = await exchange(adminKey);
    const identity = client(IdentityService, admin);
    const { principal } = await client(AuthService, admin).whoAmI({});
    const [project] = (await identity.listProjects({ organizationId: principal!.organizationId })).projects;
    const env = (await identity.listEnvironments({ projectId: project.id })).environments.find((e) => e.key === "development")!;

    const flags = client(FlagService, admin);
    await flags.createFlag({
      projectId: project.id,
      key: "banner",
      name: "Banner",
      type: FlagType.STRING,
      variants: ["control", "treatment"].map((key) => ({ key, value: fromJson(ValueSchema, key) })),
    });
    await flags.updateFlagEnvironment({ environmentId: env.id, flagKey: "banner", enabled: true, defaultVariant: "control" });
    const experiments = client(ExperimentService, admin);
    await experiments.createMetric({
      projectId: project.id,
      key: "clicked",
      name: "Clicked",
      eventName: "click",
      kind: MetricKind.CONVERSION,
      direction: Direction.INCREASE,
    });
    const base = {
      projectId: project.id,
      environmentId: env.id,
      flagKey: "banner",
      name: "Banner",
      variants: [
        { variant: "control", weight: 50 },
        { variant: "treatment", weight: 50 },
      ],
      primaryMetricKeys: ["clicked"],
    };

    // Bad dimensions: too many, not an attribute name, the unit itself.
    await refused(
      experiments.createExperiment({ ...base, key: "x1", breakdownDimensions: ["a", "b", "c", "d"] }),
      Code.InvalidArgument,
      /breakdown_dimensions.*3/,
    );
    await refused(experiments.createExperiment({ ...base, key: "x2", breakdownDimensions: ["not a name"] }), Code.InvalidArgument, /breakdown_dimensions/);
    await refused(
      experiments.createExperiment({ ...base, key: "x3", breakdownDimensions: ["targetingKey"] }),
      Code.InvalidArgument,
      /breakdown_dimensions.*unit itself/,
    );

    const { experiment } = await experiments.createExperiment({ ...base, key: "banner-test", breakdownDimensions: ["country", "platform"] });
    expect(experiment!.breakdownDimensions).toEqual(["country", "platform"]);
    await experiments.startExperiment({ id: experiment!.id, reason: "e2e" });

    const { secret: serverKey } = await identity.createApiKey({ environmentId: env.id, kind: ApiKeyKind.SERVER, name: "e2e backend" });
    const server = await exchange(serverKey);
    const evaluation = client(EvaluationService, server);
    const evaluate = async (context: Record<string, string | number | boolean>) => (await evaluation.evaluate({ flagKey: "banner", context })).evaluation!;
    await eventually(
      async () => (await evaluate({ targetingKey: "probe-unit", country: "DE" })).reason === Reason.TARGETING_MATCH,
      20_000,
      "the experiment's rollout",
    );

    // Units, each with a country (or none) and a platform; the probe is a German unit too.
    const units: { key: string; country: string | null }[] = [{ key: "probe-unit", country: "DE" }];
    for (const [country, n] of COUNTRIES)
      for (let i = units.filter((u) => u.country === country).length; i < n; i++) units.push({ key: `${country}-${i}`, country });
    for (let i = 0; i < NO_COUNTRY; i++) units.push({ key: `none-${i}`, country: null });
    const variantOf = new Map<string, string>();
    for (let i = 0; i < units.length; i += 50)
      await Promise.all(
        units.slice(i, i + 50).map(async (u) => {
          const e = await evaluate({ targetingKey: u.key, platform: "ios", ...(u.country ? { country: u.country } : {}) });
          variantOf.set(u.key, e.variant);
        }),
      );

    // Clicks: treatment clicks far more in Germany only; elsewhere both arms alike.
    const clicks = units.filter((u, i) => (u.country === "DE" && variantOf.get(u.key) === "treatment" ? i % 10 < 7 : i % 10 < 2));
    const track = client(EventService, server);
    for (let i = 0; i < clicks.length; i += 500) await track.track({ events: clicks.slice(i, i + 500).map((u) => ({ name: "click", unitKey: u.key })) });

    const segmentOf = (c: string | null) => (c === null ? "(none)" : ["DE", "US", "FR"].includes(c) ? c : "(other)");
    const expected = (segment: string, variant: string) => {
      const us = units.filter((u) => segmentOf(u.country) === segment && variantOf.get(u.key) === variant);
      return { units: us.length, clicks: us.filter((u) => clicks.includes(u)).length };
    };
    const response = await eventually(
      async () => {
        const r = await experiments.getResults({ id: experiment!.id, breakdown: "country", breakdownLimit: 3 });
        const all = r.results!.metrics[0].variants;
        const done = all.every((v) => Math.round(v.mean * Number(v.units)) === clicks.filter((u) => variantOf.get(u.key) === v.variant).length);
        const unitsDone = all.reduce((a, v) => a + Number(v.units), 0) === units.length;
        return done && unitsDone ? r : undefined;
      },
      60_000,
      "every exposure and click counted",
    );
    const b = response.breakdown!;
    expect(b.dimension).toBe("country");
    expect(b.segments.map((s) => s.value)).toEqual(["DE", "US", "FR", "(none)", "(other)"]);
    for (const s of b.segments) {
      const m = s.results!.metrics[0];
      for (const v of m.variants) {
        const e = expected(s.value, v.variant);
        expect([s.value, v.variant, Number(v.units)]).toEqual([s.value, v.variant, e.units]);
        expect(Math.round(v.mean * Number(v.units))).toBe(e.clicks);
      }
      expect(Number(s.units)).toBe(m.variants.reduce((a, v) => a + Number(v.units), 0));
    }
    // Corrected across the breakdown's five comparisons, with the main results' method.
    expect(b.comparisons).toBe(5n);
    const treat = b.segments.map((s) => s.results!.metrics[0].variants[1]);
    const adjusted = adjustPValues(
      treat.map((v) => v.pValue),
      response.results!.correction as "benjamini-hochberg",
    );
    treat.forEach((v, i) => expect(v.adjustedPValue).toBeCloseTo(adjusted[i], 12));
    expect(treat[0].adjustedPValue).toBeLessThan(0.05); // Germany's effect survives the correction
    expect(treat[0].absoluteLift).toBeGreaterThan(0.3);
    expect(b.warnings[0].code).toBe("breakdown_not_main_result");
    expect(b.warnings[0].message).toMatch(/not the experiment's result/);

    // Without a breakdown, none; with one the experiment did not choose, a clear refusal.
    expect((await experiments.getResults({ id: experiment!.id })).breakdown).toBeUndefined();
    await refused(experiments.getResults({ id: experiment!.id, breakdown: "os" }), Code.InvalidArgument, /breakdown "os".*country, platform/);
    await refused(experiments.getResults({ id: experiment!.id, breakdown: "country", breakdownLimit: 51 }), Code.InvalidArgument, /breakdown_limit/);

    // Every unit sent "ios" except the probe, whose first exposure (before the loop) had no
    // platform: its later evaluations with one do not move it, like its variant.
    const byPlatform = (await experiments.getResults({ id: experiment!.id, breakdown: "platform" })).breakdown!;
    expect(byPlatform.segments.map((s) => [s.value, Number(s.units)])).toEqual([
      ["ios", units.length - 1],
      ["(none)", 1],
    ]);
  }, 120_000);
});
