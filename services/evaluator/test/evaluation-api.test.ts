import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Code, ConnectError, createClient } from "@connectrpc/connect";
import { createConnectTransport as createWebTransport } from "@connectrpc/connect-web";
import { EvaluationService, Reason, ErrorCode, ValueType, type WatchResponse } from "#gen/vane/evaluation/v1/evaluation_service_pb.js";
import { eventually, fixture, snapshotOf, startEvaluator, createTestTokens, type EvaluatorHarness } from "./harness.ts";

const ENV = "env-api";
let h: EvaluatorHarness;
let server: string;
let clientKey: string;
let otherEnvKey: string;
let person: string;
let personOtherOrg: string;

async function codeOf(p: Promise<unknown>): Promise<Code | undefined> {
  try {
    await p;
    return undefined;
  } catch (err) {
    return ConnectError.from(err).code;
  }
}

beforeAll(async () => {
  const tokens = await createTestTokens();
  h = await startEvaluator({ verifier: tokens.verifier });
  server = await tokens.sign({ sub: "k1", org: "org-1", prj: "prj-1", env: ENV, kind: "server" });
  clientKey = await tokens.sign({ sub: "k2", org: "org-1", prj: "prj-1", env: ENV, kind: "client" });
  otherEnvKey = await tokens.sign({ sub: "k3", org: "org-1", prj: "prj-1", env: "env-missing", kind: "server" });
  person = await tokens.sign({ sub: "u1", org: "org-1", role: "viewer", kind: "user" });
  personOtherOrg = await tokens.sign({ sub: "u2", org: "org-2", role: "owner", kind: "user" });
  await h.put(snapshotOf(fixture, { environmentId: ENV, version: 1, clientVisible: ["bool-static", "split", "experiment"] }));
  await eventually(() => h.module.store.get(ENV), 5_000, "snapshot loaded");
});
afterAll(async () => {
  await h?.close();
});

describe("vane.evaluation.v1", () => {
  it("evaluates one flag over gRPC and Connect JSON", async () => {
    for (const protocol of ["grpc", "connect"] as const) {
      const c = h.client(EvaluationService, server, protocol);
      const r = await c.evaluate({ flagKey: "in-list", context: { targetingKey: "u", country: "de" } });
      expect(r.version).toBe(1n);
      expect(r.evaluation?.reason).toBe(Reason.TARGETING_MATCH);
      expect(r.evaluation?.variant).toBe("eu");
      expect(r.evaluation?.value?.kind).toEqual({ case: "stringValue", value: "EU" });
      const off = await c.evaluate({ flagKey: "bool-static" });
      expect(off.evaluation?.value?.kind).toEqual({ case: "boolValue", value: false });
      expect(off.evaluation?.reason).toBe(Reason.STATIC);
      expect(off.evaluation?.metadata).toEqual({ flagSetId: "fixture" });
    }
  });

  it("maps lookup and type errors to codes, and keeps targeting errors in-band", async () => {
    const c = h.client(EvaluationService, server);
    expect(await codeOf(c.evaluate({ flagKey: "nope" }))).toBe(Code.NotFound);
    expect(await codeOf(c.evaluate({ flagKey: "bool-static", type: ValueType.STRING }))).toBe(Code.InvalidArgument);
    const parse = await c.evaluate({ flagKey: "parse-error", context: { name: "abc" } });
    expect(parse.evaluation?.reason).toBe(Reason.ERROR);
    expect(parse.evaluation?.errorCode).toBe(ErrorCode.PARSE_ERROR);
    expect(parse.evaluation?.value).toBeUndefined();
    const disabled = await c.evaluate({ flagKey: "disabled" });
    expect(disabled.evaluation?.reason).toBe(Reason.DISABLED);
    expect(disabled.evaluation?.value).toBeUndefined();
    const int = await c.evaluate({ flagKey: "float-static", type: ValueType.INTEGER });
    expect(int.evaluation?.value?.kind).toEqual({ case: "numberValue", value: 2 });
  });

  it("evaluates every flag in one call; client keys see client-visible flags only", async () => {
    const all = await h.client(EvaluationService, server, "connect").evaluateAll({ context: { targetingKey: "u-1" } });
    expect(all.evaluations.map((e) => e.flagKey)).toEqual(Object.keys(fixture.flags));
    const client = await h.client(EvaluationService, clientKey, "connect").evaluateAll({ context: { targetingKey: "u-1" } });
    expect(client.evaluations.map((e) => e.flagKey)).toEqual(["bool-static", "split", "experiment"]);
    expect(await codeOf(h.client(EvaluationService, clientKey).evaluate({ flagKey: "string-static" }))).toBe(Code.NotFound);
  });

  it("enforces tenancy: own environment for keys, same organization for people", async () => {
    expect(await codeOf(h.client(EvaluationService).evaluate({ flagKey: "bool-static" }))).toBe(Code.Unauthenticated);
    expect(await codeOf(h.client(EvaluationService, server).evaluate({ flagKey: "bool-static", environmentId: "env-x" }))).toBe(Code.PermissionDenied);
    // Loaded and caught up: an environment not held does not exist.
    expect(await codeOf(h.client(EvaluationService, otherEnvKey).evaluate({ flagKey: "bool-static" }))).toBe(Code.NotFound);
    expect(await codeOf(h.client(EvaluationService, person).evaluate({ flagKey: "bool-static" }))).toBe(Code.InvalidArgument);
    const preview = await h.client(EvaluationService, person).evaluate({ flagKey: "bool-static", environmentId: ENV });
    expect(preview.evaluation?.variant).toBe("off");
    expect(await codeOf(h.client(EvaluationService, personOtherOrg).evaluate({ flagKey: "bool-static", environmentId: ENV }))).toBe(Code.NotFound);
    expect(await codeOf(h.client(EvaluationService, personOtherOrg).evaluate({ flagKey: "bool-static", environmentId: "nope" }))).toBe(Code.NotFound);
  });

  it("watch pushes re-evaluated values on each version, through Connect-Web", async () => {
    const web = createClient(
      EvaluationService,
      createWebTransport({ baseUrl: h.baseUrl, interceptors: [(next) => (req) => (req.header.set("authorization", `Bearer ${clientKey}`), next(req))] }),
    );
    const abort = new AbortController();
    const stream = web.watch({ context: { targetingKey: "user-7" } }, { signal: abort.signal })[Symbol.asyncIterator]();
    const first = (await stream.next()).value as WatchResponse;
    expect(first.version).toBe(1n);
    expect(first.changedFlagKeys).toEqual(["bool-static", "split", "experiment"]);
    const flipped = structuredClone(fixture);
    (flipped.flags as any)["bool-static"].defaultVariant = "on";
    await h.put(snapshotOf(flipped, { environmentId: ENV, version: 2, clientVisible: ["bool-static", "split", "experiment"] }));
    const second = (await stream.next()).value as WatchResponse;
    expect(second.version).toBe(2n);
    expect(second.changedFlagKeys).toEqual(["bool-static"]);
    expect(second.evaluations.find((e) => e.flagKey === "bool-static")?.value?.kind).toEqual({ case: "boolValue", value: true });
    abort.abort();
    await eventually(async () => /vane_evaluator_open_streams\{kind="vane_watch"[^}]*\} 0/.test(await metricsText(h.baseUrl)), 5_000, "watch stream closed");
  });

  it("exports snapshot version and age, and is ready with a snapshot", async () => {
    const text = await metricsText(h.baseUrl);
    expect(text).toMatch(/vane_evaluator_snapshot_version\{environment_id="env-api",source="kv"[^}]*\} 2/);
    expect(text).toMatch(/vane_evaluator_snapshot_age_seconds\{environment_id="env-api",source="kv"[^}]*\} [0-9.]+/);
    const ready = await fetch(`${h.baseUrl}/readyz`);
    expect(ready.status).toBe(200);
  });
});

async function metricsText(baseUrl: string): Promise<string> {
  return (await fetch(`${baseUrl}/metrics`)).text();
}

describe("context limits, on every protocol", () => {
  const flagd = async (context: unknown) => {
    const res = await fetch(`http://127.0.0.1:${h.flagd.evaluationPort}/flagd.evaluation.v1.Service/ResolveBoolean`, {
      method: "POST",
      headers: { "content-type": "application/json", "flagd-selector": ENV },
      body: JSON.stringify({ flagKey: "bool-static", context }),
    });
    return { status: res.status, body: (await res.json()) as { code?: string; message?: string } };
  };
  let deep: unknown = "leaf";
  for (let i = 0; i < 12; i++) deep = { nested: deep };
  const cases: [string, Record<string, unknown>, RegExp][] = [
    ["a targeting key of 2,000 characters", { targetingKey: "k".repeat(2_000) }, /targetingKey/],
    ["an attribute of 20,000 characters", { targetingKey: "u", bio: "b".repeat(20_000) }, /context\.bio is 20000 characters; the limit .* 16384/],
    ["201 attributes", Object.fromEntries(Array.from({ length: 201 }, (_, i) => [`a${i}`, i])), /at most 200 attributes|the limit is 200/],
    ["nesting of 12 levels", { targetingKey: "u", deep }, /nests more than 8 levels/],
    ["a list of 3,000 values", { targetingKey: "u", list: Array.from({ length: 3_000 }, (_, i) => i) }, /more than 2000 values/],
  ];

  it.each(cases)("refuses %s with INVALID_ARGUMENT naming the limit, over gRPC, Connect and flagd", async (_, context, message) => {
    for (const protocol of ["grpc", "connect"] as const) {
      const err = await h
        .client(EvaluationService, server, protocol)
        .evaluate({ flagKey: "bool-static", context: context as never })
        .catch((e: unknown) => ConnectError.from(e));
      expect(err).toBeInstanceOf(ConnectError);
      expect((err as ConnectError).code, protocol).toBe(Code.InvalidArgument);
      expect((err as ConnectError).rawMessage).toMatch(message);
      const all = await h
        .client(EvaluationService, server, protocol)
        .evaluateAll({ context: context as never })
        .catch((e: unknown) => ConnectError.from(e));
      expect((all as ConnectError).code, `${protocol} EvaluateAll`).toBe(Code.InvalidArgument);
    }
    const viaFlagd = await flagd(context);
    expect(viaFlagd.status).toBe(400);
    expect(viaFlagd.body.code).toBe("invalid_argument");
    expect(viaFlagd.body.message).toMatch(message);
  });

  it("still serves contexts within the limits, after refusing", async () => {
    const r = await h
      .client(EvaluationService, server)
      .evaluate({ flagKey: "in-list", context: { targetingKey: "k".repeat(256), country: "de", bio: "b".repeat(16_384) } });
    expect(r.evaluation?.variant).toBe("eu");
    expect((await flagd({ targetingKey: "u" })).status).toBe(200);
  });
});
