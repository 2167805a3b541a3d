/**
 * Cacheable EvaluateAll: entity tags, "not modified" over gRPC and Connect POST, 304 over Connect
 * GET, answers for repeated contexts from the cache (and the cache invalidated by a new
 * version), exposures, and bad tags.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Code, ConnectError, createClient } from "@connectrpc/connect";
import { createConnectTransport } from "@connectrpc/connect-node";
import { EvaluationService } from "#gen/vane/evaluation/v1/evaluation_service_pb.js";
import { eventually, fixture, snapshotOf, startEvaluator, createTestTokens, type EvaluatorHarness } from "./harness.ts";

const ENV = "env-bulk";
const PATH = "/vane.evaluation.v1.EvaluationService/EvaluateAll";
let h: EvaluatorHarness;
let server: string;
let clientKey: string;
let person: string;

async function codeOf(p: Promise<unknown>): Promise<Code | undefined> {
  try {
    await p;
    return undefined;
  } catch (err) {
    return ConnectError.from(err).code;
  }
}
/** A Connect GET of EvaluateAll, as a browser or CDN sends it. */
function get(message: object, headers: Record<string, string> = {}) {
  const q = new URLSearchParams({ connect: "v1", encoding: "json", message: JSON.stringify(message) });
  return fetch(`${h.baseUrl}${PATH}?${q}`, { headers: { authorization: `Bearer ${server}`, ...headers } });
}
/** Exposures the publisher took (published, buffered or suppressed as repeats). */
function exposuresSeen(): number {
  const s = h.module.exposures.stats();
  return s.published + s.buffered + s.suppressed + s.dropped;
}

beforeAll(async () => {
  const tokens = await createTestTokens();
  h = await startEvaluator({ verifier: tokens.verifier, env: { VANE_BULK_CACHE_ENTRIES: "100" } });
  server = await tokens.sign({ sub: "k1", org: "org-1", prj: "prj-1", env: ENV, kind: "server" });
  clientKey = await tokens.sign({ sub: "k2", org: "org-1", prj: "prj-1", env: ENV, kind: "client" });
  person = await tokens.sign({ sub: "u1", org: "org-1", role: "viewer", kind: "user" });
  await h.put(snapshotOf(fixture, { environmentId: ENV, version: 1, clientVisible: ["bool-static", "split", "experiment"] }));
  await eventually(() => h.module.store.get(ENV), 5_000, "snapshot loaded");
});
afterAll(async () => {
  await h?.close();
});

describe("EvaluateAll entity tags", () => {
  it("tags the answer by version, visibility and context (not the order of its keys)", async () => {
    const c = h.client(EvaluationService, server, "connect");
    const a = await c.evaluateAll({ context: { targetingKey: "u-1", plan: "pro" } });
    const b = await c.evaluateAll({ context: { plan: "pro", targetingKey: "u-1" } });
    const other = await c.evaluateAll({ context: { targetingKey: "u-2", plan: "pro" } });
    const visible = await h.client(EvaluationService, clientKey, "connect").evaluateAll({ context: { targetingKey: "u-1", plan: "pro" } });
    expect(a.etag).toMatch(/^"v1\.\d+-a-[\w-]+(-[\w-]+)?"$/);
    expect(b.etag).toBe(a.etag);
    expect(b.evaluations).toEqual(a.evaluations);
    expect(other.etag).not.toBe(a.etag);
    expect(visible.etag).not.toBe(a.etag);
    expect(a.notModified).toBe(false);
    expect(a.evaluations.map((e) => e.flagKey)).toEqual(Object.keys(fixture.flags));
  });

  it("answers not_modified to the tag it gave, over gRPC and Connect POST", async () => {
    for (const protocol of ["grpc", "connect"] as const) {
      const c = h.client(EvaluationService, server, protocol);
      const context = { targetingKey: `u-${protocol}` };
      const full = await c.evaluateAll({ context });
      const again = await c.evaluateAll({ context, ifNoneMatch: full.etag });
      expect(again, protocol).toMatchObject({ notModified: true, etag: full.etag, version: 1n, environmentId: ENV, evaluations: [] });
      const weak = await c.evaluateAll({ context, ifNoneMatch: `W/${full.etag}` });
      expect(weak.notModified, protocol).toBe(true);
      const stale = await c.evaluateAll({ context, ifNoneMatch: '"v0.0-a-x"' });
      expect(stale.notModified, protocol).toBe(false);
      expect(stale.evaluations, protocol).toEqual(full.evaluations);
    }
  });

  it("serves Connect GET with an ETag, and a 304 without a body to If-None-Match", async () => {
    const message = { context: { targetingKey: "u-get" } };
    const first = await get(message);
    expect(first.status).toBe(200);
    const etag = first.headers.get("etag");
    expect(etag).toMatch(/^"v1\./);
    expect(first.headers.get("cache-control")).toBe("no-cache");
    const body = (await first.json()) as { etag: string; evaluations: unknown[] };
    expect(body.etag).toBe(etag);
    expect(body.evaluations).toHaveLength(Object.keys(fixture.flags).length);

    const revalidated = await get(message, { "if-none-match": `"other", ${etag}` });
    expect(revalidated.status).toBe(304);
    expect(revalidated.headers.get("etag")).toBe(etag);
    expect(await revalidated.text()).toBe("");
    const changed = await get({ context: { targetingKey: "u-get-2" } }, { "if-none-match": etag! });
    expect(changed.status).toBe(200);

    // connect-node's own client calls it with GET too (the method is free of side effects).
    const transport = createConnectTransport({
      baseUrl: h.baseUrl,
      httpVersion: "1.1",
      useHttpGet: true,
      interceptors: [
        (next) => (req) => {
          req.header.set("authorization", `Bearer ${server}`);
          return next(req);
        },
      ],
    });
    const viaClient = await createClient(EvaluationService, transport).evaluateAll(message);
    expect(viaClient.etag).toBe(etag);
  });

  it("keeps answers for repeated contexts until the version changes", async () => {
    const c = h.client(EvaluationService, server);
    const context = { targetingKey: "u-version", country: "de" };
    const before = await c.evaluateAll({ context });
    expect(h.module.bulkCache.size().entries).toBeGreaterThan(0);
    const changed = structuredClone(fixture);
    (changed.flags as Record<string, { defaultVariant: string }>)["bool-static"].defaultVariant = "on";
    await h.put(snapshotOf(changed, { environmentId: ENV, version: 2 }));
    await eventually(() => h.module.store.get(ENV)?.version === 2, 5_000, "version 2 loaded");
    const after = await c.evaluateAll({ context, ifNoneMatch: before.etag });
    expect(after.notModified).toBe(false);
    expect(after.version).toBe(2n);
    expect(after.etag).toMatch(/^"v2\./);
    expect(after.evaluations.find((e) => e.flagKey === "bool-static")?.value?.kind).toEqual({ case: "boolValue", value: true });
    expect(before.evaluations.find((e) => e.flagKey === "bool-static")?.value?.kind).toEqual({ case: "boolValue", value: false });
    await h.put(snapshotOf(fixture, { environmentId: ENV, version: 3, clientVisible: ["bool-static", "split", "experiment"] }));
    await eventually(() => h.module.store.get(ENV)?.version === 3, 5_000, "version 3 loaded");
  });

  it("reports exposures for every answer with evaluations (evaluated or cached), none for not modified", async () => {
    const c = h.client(EvaluationService, server);
    const context = { targetingKey: "u-exposed" };
    const seen0 = exposuresSeen();
    const full = await c.evaluateAll({ context });
    expect(exposuresSeen()).toBe(seen0 + 1);
    await c.evaluateAll({ context }); // from the cache
    expect(exposuresSeen()).toBe(seen0 + 2);
    await c.evaluateAll({ context, ifNoneMatch: full.etag });
    expect(exposuresSeen()).toBe(seen0 + 2);
    // People previewing in the console are never exposures, cached or not.
    await h.client(EvaluationService, person).evaluateAll({ context, environmentId: ENV });
    await h.client(EvaluationService, person).evaluateAll({ context, environmentId: ENV });
    expect(exposuresSeen()).toBe(seen0 + 2);
  });

  it("refuses bad tags: INVALID_ARGUMENT naming the field or header", async () => {
    const c = h.client(EvaluationService, server);
    for (const bad of ["no-quotes", '"a" "b"', `"${"x".repeat(199)}"`, '"a,b', '"tab\there"']) {
      const err = await c.evaluateAll({ ifNoneMatch: bad }).then(
        () => undefined,
        (e: unknown) => ConnectError.from(e),
      );
      expect(err?.code, bad).toBe(Code.InvalidArgument);
      expect(err?.rawMessage, bad).toContain("if_none_match");
    }
    const res = await get({}, { "if-none-match": "not a tag" });
    expect(res.status).toBe(400);
    const body = (await res.json()) as { code: string; message: string };
    expect(body.code).toBe("invalid_argument");
    expect(body.message).toContain("If-None-Match");
    expect(await codeOf(h.client(EvaluationService, server, "connect").evaluateAll({ ifNoneMatch: "*" }))).toBe(Code.InvalidArgument);
    // OFREP bulk shares the tag and its checks: 400 with OFREP's error shape.
    const ofrep = (ifNoneMatch: string) =>
      fetch(`${h.baseUrl}/ofrep/v1/evaluate/flags`, {
        method: "POST",
        headers: { authorization: `Bearer ${server}`, "content-type": "application/json", "if-none-match": ifNoneMatch },
        body: JSON.stringify({ context: { targetingKey: "u-ofrep" } }),
      });
    const refused = await ofrep("not a tag");
    expect(refused.status).toBe(400);
    expect(await refused.json()).toMatchObject({ errorCode: "GENERAL", errorDetails: expect.stringContaining("If-None-Match") });
    const tag = (await ofrep('"other"')).headers.get("etag")!;
    expect((await ofrep(`W/${tag}`)).status).toBe(304);
    expect((await ofrep("*")).status).toBe(304);
  });
});
