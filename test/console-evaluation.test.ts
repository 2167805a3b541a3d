/**
 * What the console's evaluation debugger and `vane eval` need from vane.evaluation.v1, through
 * the real identity, flags service and evaluator (snapshots through the outbox and the KV
 * bucket, tokens from identity): a member evaluates in any environment of their organization
 * (one call per environment), gets an explanation naming the rule and each condition, records
 * no exposures; other organizations' environments are NOT_FOUND; keys cannot explain.
 */
import { create, fromBinary, fromJson, type JsonValue } from "@bufbuild/protobuf";
import { ValueSchema } from "@bufbuild/protobuf/wkt";
import { Code } from "@connectrpc/connect";
import { jetstreamManager } from "@nats-io/jetstream";
import type { NatsConnection } from "@nats-io/transport-node";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { EvaluationService, Reason } from "#gen/vane/evaluation/v1/evaluation_service_pb.js";
import { EventEnvelopeSchema } from "#gen/vane/events/v1/events_pb.js";
import { FlagService } from "#gen/vane/flags/v1/flag_service_pb.js";
import { FlagType, Operator, type Rule, RuleSchema, VariantSchema } from "#gen/vane/flags/v1/flags_pb.js";
import { SegmentService } from "#gen/vane/flags/v1/segment_service_pb.js";
import { AuthService } from "#gen/vane/identity/v1/auth_service_pb.js";
import { ApiKeyKind } from "#gen/vane/identity/v1/identity_pb.js";
import { IdentityService } from "#gen/vane/identity/v1/identity_service_pb.js";
import { createTokenVerifier } from "#lib/auth/auth.ts";
import { connectTestNats, deleteStreams, eventually, failure } from "#test/support/harness.ts";
import { type FlagsHarness, startFlags, type Tenant } from "../services/flags/test/harness.ts";
import { type EvaluatorHarness, startEvaluator } from "../services/evaluator/test/harness.ts";

const v = (x: JsonValue) => fromJson(ValueSchema, x);
const variants = [create(VariantSchema, { key: "on", value: v(true) }), create(VariantSchema, { key: "off", value: v(false) })];
const rule = (init: Parameters<typeof create<typeof RuleSchema>>[1]): Rule => create(RuleSchema, init);
const attr = (attribute: string, operator: Operator, values: JsonValue[]) => ({
  kind: { case: "attribute" as const, value: { attribute, operator, values: values.map(v) } },
});
const serve = (variant: string) => ({ kind: { case: "variant" as const, value: variant } });

describe("evaluation for the console and the CLI", () => {
  let h: FlagsHarness;
  let ev: EvaluatorHarness;
  let nc: NatsConnection;
  let t: Tenant;
  let other: Tenant;
  let viewer: string;
  let serverToken: string;
  let prodVersion: bigint;
  let stagingVersion: bigint;

  const key = async (kind: ApiKeyKind, environmentId?: string) => {
    const { secret } = await h.client(IdentityService, t.ownerToken).createApiKey({ kind, name: "k", ...(environmentId ? { environmentId } : {}) });
    return (await h.client(AuthService).exchangeApiKey({ apiKey: secret })).accessToken;
  };
  const evaluation = (token: string) => ev.client(EvaluationService, token);
  /** Waits until the evaluator holds the environment at `version` (snapshots travel through the outbox). */
  const loaded = (environmentId: string, version: bigint) =>
    eventually(() => (ev.module.store.get(environmentId)?.version ?? 0) >= Number(version), 10_000, `environment ${environmentId} at version ${version}`);

  beforeAll(async () => {
    h = await startFlags();
    ev = await startEvaluator({
      bucket: h.bucket,
      fixtures: false,
      flagd: false,
      verifier: createTokenVerifier({ issuer: "vane", keys: h.identity.keys.keySet }),
    });
    nc = await connectTestNats();
    t = await h.seedTenant();
    other = await h.seedTenant();
    viewer = (await h.member(t, "viewer")).token;
    const flags = h.client(FlagService, t.ownerToken);
    await h.client(SegmentService, t.ownerToken).createSegment({ projectId: t.projectId, key: "beta", name: "Beta", includedKeys: ["u-beta"] });
    await flags.createFlag({ projectId: t.projectId, key: "checkout", name: "Checkout", type: FlagType.BOOLEAN, variants });
    await flags.updateFlagEnvironment({
      environmentId: t.environmentId,
      flagKey: "checkout",
      enabled: true,
      defaultVariant: "off",
      rules: [
        rule({
          id: "staff",
          description: "staff",
          conditions: [attr("email", Operator.ENDS_WITH, ["@acme.com"]), attr("age", Operator.GREATER_THAN_OR_EQUAL, [18])],
          outcome: serve("on"),
        }),
        rule({ id: "beta", description: "beta testers", conditions: [{ kind: { case: "segment", value: { segmentKey: "beta" } } }], outcome: serve("on") }),
        rule({
          id: "half",
          description: "half of the rest",
          outcome: {
            kind: {
              case: "rollout",
              value: {
                variants: [
                  { variant: "on", weight: 50 },
                  { variant: "off", weight: 50 },
                ],
              },
            },
          },
        }),
      ],
    });
    await flags.createFlag({ projectId: t.projectId, key: "exp-flag", name: "Experiment", type: FlagType.BOOLEAN, variants });
    prodVersion = (
      await flags.updateFlagEnvironment({
        environmentId: t.environmentId,
        flagKey: "exp-flag",
        enabled: true,
        defaultVariant: "off",
        rules: [
          rule({
            outcome: {
              kind: {
                case: "rollout",
                value: {
                  seed: "exp-1",
                  experimentId: "exp-1",
                  variants: [
                    { variant: "on", weight: 1 },
                    { variant: "off", weight: 1 },
                  ],
                },
              },
            },
          }),
        ],
      })
    ).configVersion;
    stagingVersion = (await flags.updateFlagEnvironment({ environmentId: t.stagingId, flagKey: "checkout", enabled: true, defaultVariant: "on" }))
      .configVersion;
    serverToken = await key(ApiKeyKind.SERVER, t.environmentId);
    await loaded(t.environmentId, prodVersion);
    await loaded(t.stagingId, stagingVersion);
  }, 60_000);
  afterAll(async () => {
    await ev?.close();
    if (nc) {
      await deleteStreams(nc, [ev.stream]);
      await nc.drain();
    }
    await h?.close();
  });

  it("lets a viewer evaluate one flag in every environment of the project, one call per environment", async () => {
    const e = evaluation(viewer);
    const context = { targetingKey: "u1", email: "ann@example.com" };
    const prod = await e.evaluate({ flagKey: "checkout", environmentId: t.environmentId, context });
    const staging = await e.evaluate({ flagKey: "checkout", environmentId: t.stagingId, context });
    expect(prod.version).toBe(prodVersion);
    expect(prod.evaluation).toMatchObject({ reason: Reason.TARGETING_MATCH });
    expect(staging.version).toBe(stagingVersion);
    expect(staging.evaluation).toMatchObject({ variant: "on", reason: Reason.STATIC });
    // A personal key acts as its member.
    const personal = await key(ApiKeyKind.PERSONAL);
    expect((await evaluation(personal).evaluate({ flagKey: "checkout", environmentId: t.stagingId, context })).evaluation?.variant).toBe("on");
    expect((await evaluation(personal).evaluateAll({ environmentId: t.environmentId, context })).evaluations.map((x) => x.flagKey)).toEqual([
      "checkout",
      "exp-flag",
    ]);
  });

  it("answers NOT_FOUND for another organization's environments, exactly as for unknown ones", async () => {
    const outsider = (await h.member(other, "viewer")).token;
    for (const environmentId of [t.environmentId, "00000000-0000-4000-8000-000000000009"]) {
      const err = await failure(evaluation(outsider).evaluate({ flagKey: "checkout", environmentId }));
      expect({ code: err.code, message: err.rawMessage }).toEqual({ code: Code.NotFound, message: `environment "${environmentId}" not found` });
    }
    expect((await failure(evaluation(viewer).evaluate({ flagKey: "checkout" }))).code).toBe(Code.InvalidArgument);
    expect((await failure(evaluation(serverToken).evaluate({ flagKey: "checkout", environmentId: t.stagingId }))).code).toBe(Code.PermissionDenied);
  });

  it("explains which rule matched, condition by condition", async () => {
    const e = evaluation(viewer);
    const explained = async (context: Record<string, JsonValue>) =>
      (await e.evaluate({ flagKey: "checkout", environmentId: t.environmentId, context, explain: true })).evaluation!;

    // Staff: both conditions match.
    const staff = await explained({ targetingKey: "u1", email: "ann@acme.com", age: 30 });
    expect(staff.variant).toBe("on");
    expect(staff.explanation).toMatchObject({
      matchedRuleIndex: 0,
      matchedRuleId: "staff",
      matchedRuleDescription: "staff",
      summary: 'rules[0] "staff" matched: served "on"',
    });
    expect(staff.explanation!.rules).toHaveLength(1);
    expect(staff.explanation!.rules[0].conditions.map((c) => ({ i: c.index, evaluated: c.evaluated, matched: c.matched, actual: c.actual }))).toEqual([
      { i: 0, evaluated: true, matched: true, actual: v("ann@acme.com") },
      { i: 1, evaluated: true, matched: true, actual: v(30) },
    ]);
    expect(staff.explanation!.rules[0].conditions[0].condition?.kind.value).toMatchObject({
      attribute: "email",
      operator: Operator.ENDS_WITH,
      values: [v("@acme.com")],
    });

    // Beta: the staff rule fails at its first condition (the second is not evaluated), the segment matches.
    const beta = await explained({ targetingKey: "u-beta", email: "b@example.com" });
    const [r0, r1] = beta.explanation!.rules;
    expect(r0).toMatchObject({ index: 0, matched: false });
    expect(r0.conditions.map((c) => [c.evaluated, c.matched])).toEqual([
      [true, false],
      [false, false],
    ]);
    expect(r0.conditions[0].actual).toEqual(v("b@example.com"));
    expect(r1).toMatchObject({ index: 1, id: "beta", matched: true, variant: "on" });
    expect(r1.conditions[0]).toMatchObject({ matched: true, segmentMember: true });
    expect(beta.explanation!.matchedRuleIndex).toBe(1);

    // The rollout: every rule before it is explained, then the bucket the unit fell into.
    const rest = await explained({ targetingKey: "u-rest", email: "c@example.com" });
    expect(rest.explanation!.rules.map((r) => r.matched)).toEqual([false, false, true]);
    const split = rest.explanation!.rules[2];
    expect(split).toMatchObject({ id: "half", hasBucketingValue: true, variant: rest.variant });
    expect(split.rollout).toMatchObject({ bucketingValue: "checkoutu-rest", totalWeight: 100n, variant: rest.variant });
    expect(split.rollout!.percent).toBe(Number(split.rollout!.bucket));

    // Without a targeting key the rollout's rule cannot bucket: nothing matches, the default.
    const anonymous = await explained({ email: "d@example.com" });
    expect(anonymous).toMatchObject({ variant: "off", reason: Reason.DEFAULT });
    expect(anonymous.explanation).toMatchObject({ matchedRuleIndex: -1, summary: 'no rule matched: served the default variant "off"' });
    expect(anonymous.explanation!.rules[2]).toMatchObject({ matched: false, hasBucketingValue: false });

    // The JSON Logic behind it, step by step: the chain and the branch it took.
    expect(rest.explanation!.steps[0]).toMatchObject({ path: "targeting", operator: "if", depth: 0, branch: 5 });
    expect(rest.explanation!.steps.find((s) => s.operator === "ends_with")).toMatchObject({
      path: "targeting.if[0].and[0]",
      truthy: false,
      variables: { email: v("c@example.com") },
    });
  });

  it("explains every flag of EvaluateAll, and the same evaluations without explain carry none", async () => {
    const e = evaluation(viewer);
    const context = { targetingKey: "u-beta" };
    const all = await e.evaluateAll({ environmentId: t.environmentId, context, explain: true });
    expect(all.evaluations.map((x) => [x.flagKey, x.explanation?.matchedRuleIndex])).toEqual([
      ["checkout", 1],
      ["exp-flag", 0],
    ]);
    const plain = await e.evaluateAll({ environmentId: t.environmentId, context });
    expect(plain.evaluations.every((x) => x.explanation === undefined)).toBe(true);
    expect((await e.evaluate({ flagKey: "checkout", environmentId: t.stagingId, context, explain: true })).evaluation?.explanation).toMatchObject({
      matchedRuleIndex: -1,
      summary: 'no targeting: served "on" (the default variant)',
    });
  });

  it("refuses explanations to server and client keys: they may not read targeting rules", async () => {
    const err = await failure(evaluation(serverToken).evaluate({ flagKey: "checkout", explain: true }));
    expect(err.code).toBe(Code.PermissionDenied);
    expect(err.rawMessage).toMatch(/explain needs a person's token/);
    expect((await failure(evaluation(serverToken).evaluateAll({ explain: true }))).code).toBe(Code.PermissionDenied);
  });

  it("records no exposures for people's evaluations (debugger), only for keys'", async () => {
    await evaluation(viewer).evaluate({ flagKey: "exp-flag", environmentId: t.environmentId, context: { targetingKey: "member-unit" } });
    await evaluation(viewer).evaluateAll({ environmentId: t.environmentId, context: { targetingKey: "member-unit-2" }, explain: true });
    await evaluation(serverToken).evaluate({ flagKey: "exp-flag", context: { targetingKey: "server-unit" } });
    const jsm = await jetstreamManager(nc);
    const units = async () => {
      const { state } = await jsm.streams.info(ev.stream);
      const out: string[] = [];
      for (let seq = state.first_seq; seq <= state.last_seq && state.messages > 0; seq++) {
        const m = await jsm.streams.getMessage(ev.stream, { seq });
        const e = fromBinary(EventEnvelopeSchema, m!.data);
        if (e.payload.case === "exposure") out.push(e.payload.value.unitKey);
      }
      return out;
    };
    await eventually(async () => (await units()).includes("server-unit"), 10_000, "the server key's exposure");
    expect(await units()).toEqual(["server-unit"]);
  });
});
