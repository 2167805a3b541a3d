/**
 * The Connect fast path (lib/server/connect-fast-path.ts) must be indistinguishable from
 * connect-node behind lib/server/connect-adapter.ts: the same service is served by two servers,
 * one with the fast path and one without, and every answer — status, headers (but Date) and
 * body — is compared byte for byte, over HTTP/1.1 and HTTP/2, for successes and each kind of
 * error. Which path served a call is told by how its signal ended (the fast path aborts with a
 * ConnectError, connect-node with an AbortError).
 */
import * as http from "node:http";
import * as http2 from "node:http2";
import { gunzipSync } from "node:zlib";
import { create, toBinary } from "@bufbuild/protobuf";
import { Code, ConnectError, type Interceptor } from "@connectrpc/connect";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  EvaluateAllResponseSchema,
  EvaluateRequestSchema,
  EvaluateResponseSchema,
  EvaluationService,
  Reason,
} from "#gen/vane/evaluation/v1/evaluation_service_pb.js";
import { createHealthRegistry } from "#lib/server/health.ts";
import { createServer, serve, type VaneServer } from "#lib/server/server.ts";
import { createTestLogger } from "#test/support/harness.ts";

const ended: unknown[] = [];
const trailing: Interceptor = (next) => async (req) => {
  const res = await next(req);
  if (!req.stream) res.trailer.set("x-trailer", "t");
  return res;
};
const impl = serve(EvaluationService, {
  async evaluate(req, ctx) {
    ctx.signal.addEventListener("abort", () => ended.push(ctx.signal.reason), { once: true });
    if (req.flagKey === "missing") throw new ConnectError(`flag "missing" not found`, Code.NotFound, { "x-why": "gone" });
    if (req.flagKey === "crash") throw new Error("a bug");
    if (req.flagKey === "slow") await new Promise((r) => ctx.signal.addEventListener("abort", r, { once: true }));
    ctx.responseHeader.set("x-version", "7");
    return create(EvaluateResponseSchema, {
      evaluation: {
        flagKey: req.flagKey,
        variant: "on",
        reason: Reason.TARGETING_MATCH,
        value: { kind: { case: "stringValue", value: req.flagKey === "big" ? "x".repeat(4000) : "v" } },
      },
      version: 7n,
    });
  },
  evaluateAll: () => create(EvaluateAllResponseSchema, {}),
  async *watch() {},
});

const servers: Record<"fast" | "plain", { server: VaneServer; port: number }> = {} as never;
beforeAll(async () => {
  for (const kind of ["fast", "plain"] as const) {
    const server = createServer({
      port: 0,
      host: "127.0.0.1",
      logger: createTestLogger(),
      health: createHealthRegistry({ cacheMs: 0 }),
      interceptors: [trailing],
      readMaxBytes: 2048,
      defaultTimeoutMs: 300,
      services: [{ ...impl, fastUnary: kind === "fast", options: { compressMinBytes: 1000 } }],
    });
    servers[kind] = { server, port: await server.listen() };
  }
});
afterAll(async () => {
  await Promise.all(Object.values(servers).map((s) => s.server.close()));
});

interface Answer {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  body: Buffer;
}
type Send = { path?: string; headers: Record<string, string>; body: Buffer | string; chunked?: boolean };

function h1(port: number, s: Send): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const body = typeof s.body === "string" ? Buffer.from(s.body) : s.body;
    const headers = s.chunked ? s.headers : { ...s.headers, "content-length": String(body.length) };
    const req = http.request({ host: "127.0.0.1", port, method: "POST", path: s.path ?? "/vane.evaluation.v1.EvaluationService/Evaluate", headers }, (res) => {
      const chunks: Buffer[] = [];
      res.on("data", (c: Buffer) => chunks.push(c));
      res.on("end", () => resolve({ status: res.statusCode!, headers: { ...res.headers }, body: Buffer.concat(chunks) }));
    });
    req.on("error", reject);
    req.end(body);
  });
}
function h2(port: number, s: Send): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const session = http2.connect(`http://127.0.0.1:${port}`);
    session.on("error", reject);
    const req = session.request({ ":method": "POST", ":path": s.path ?? "/vane.evaluation.v1.EvaluationService/Evaluate", ...s.headers });
    let headers: Record<string, string | string[] | undefined> = {};
    req.on("response", (h) => (headers = { ...h }));
    const chunks: Buffer[] = [];
    req.on("data", (c: Buffer) => chunks.push(c));
    req.on("end", () => {
      session.close();
      resolve({ status: Number(headers[":status"]), headers, body: Buffer.concat(chunks) });
    });
    req.on("error", reject);
    req.end(s.body);
  });
}

/** The same request to both servers; the answers without their Date. */
async function both(send: (port: number, s: Send) => Promise<Answer>, s: Send) {
  const strip = (a: Answer) => ({ ...a, headers: { ...a.headers, date: undefined } });
  const before = ended.length;
  const fast = await send(servers.fast.port, s);
  const fastEnded = ended.slice(before);
  const plain = await send(servers.plain.port, s);
  return { fast: strip(fast), plain: strip(plain), servedFast: fastEnded.length > 0 && fastEnded.every((r) => r instanceof ConnectError) };
}

const json = (o: object) => JSON.stringify(o);
const JSON_TYPE = { "content-type": "application/json" };
const PROTO_TYPE = { "content-type": "application/proto" };
const binary = (flagKey: string) => Buffer.from(toBinary(EvaluateRequestSchema, create(EvaluateRequestSchema, { flagKey })));

const cases: [string, Send, number, boolean][] = [
  ["success, JSON", { headers: JSON_TYPE, body: json({ flagKey: "f", context: { targetingKey: "u" } }) }, 200, true],
  [
    "success, JSON with a charset and an unknown field",
    { headers: { "content-type": "application/json; charset=utf-8" }, body: json({ flagKey: "f", nope: 1 }) },
    200,
    true,
  ],
  ["success, binary", { headers: PROTO_TYPE, body: binary("f") }, 200, true],
  ["success, compressed for a client that accepts gzip", { headers: { ...JSON_TYPE, "accept-encoding": "gzip" }, body: json({ flagKey: "big" }) }, 200, true],
  ["an error of the implementation, with metadata", { headers: JSON_TYPE, body: json({ flagKey: "missing" }) }, 404, true],
  ["an error of the implementation, binary request", { headers: PROTO_TYPE, body: binary("missing") }, 404, true],
  ["a bug in the implementation (INTERNAL)", { headers: JSON_TYPE, body: json({ flagKey: "crash" }) }, 500, true],
  ["a field that breaks a validation rule", { headers: JSON_TYPE, body: json({ flagKey: "" }) }, 400, false],
  ["malformed JSON", { headers: JSON_TYPE, body: '{"flagKey": ' }, 400, false],
  ["JSON of the wrong shape", { headers: JSON_TYPE, body: json({ flagKey: 12 }) }, 400, false],
  [
    "JSON that is not UTF-8",
    { headers: JSON_TYPE, body: Buffer.from([0x7b, 0x22, 0x66, 0x6c, 0x61, 0x67, 0x4b, 0x65, 0x79, 0x22, 0x3a, 0x22, 0xff, 0x22, 0x7d]) },
    400,
    false,
  ],
  ["binary that does not decode", { headers: PROTO_TYPE, body: Buffer.from([0x0a, 0x05, 0x61]) }, 400, false],
  ["a string field that is not UTF-8 (binary)", { headers: PROTO_TYPE, body: Buffer.from([0x0a, 0x01, 0xff]) }, 400, false],
  ["a body over the size limit", { headers: JSON_TYPE, body: json({ flagKey: "f".repeat(3000) }) }, 429, false],
  ["a body over the size limit, chunked", { headers: JSON_TYPE, body: json({ flagKey: "f".repeat(3000) }), chunked: true }, 429, false],
  ["a malformed Connect-Timeout-Ms", { headers: { ...JSON_TYPE, "connect-timeout-ms": "soon" }, body: json({ flagKey: "f" }) }, 400, false],
  // The client's deadline aborts the signal; an implementation that still answers is answered.
  ["the client's deadline", { headers: { ...JSON_TYPE, "connect-timeout-ms": "50" }, body: json({ flagKey: "slow" }) }, 200, true],
  ["the server's default deadline", { headers: JSON_TYPE, body: json({ flagKey: "slow" }) }, 504, true],
  ["a content type Connect does not take (the normal path answers)", { headers: { "content-type": "text/plain" }, body: "f" }, 415, false],
  ["a compressed request (the normal path answers)", { headers: { ...JSON_TYPE, "content-encoding": "gzip" }, body: Buffer.from([1, 2, 3]) }, 400, false],
];

describe("Connect fast path", () => {
  for (const [name, send] of [
    ["HTTP/1.1", h1],
    ["HTTP/2", h2],
  ] as const) {
    it(`answers exactly as connect-node does over ${name}: successes and every kind of error`, async () => {
      for (const [what, request, status, reachesImplementation] of cases) {
        const { fast, plain, servedFast } = await both(send, request);
        expect(fast.status, what).toBe(status);
        expect(fast.headers, what).toEqual(plain.headers);
        expect(fast.body.toString("hex"), what).toBe(plain.body.toString("hex"));
        if (reachesImplementation) expect(servedFast, `${what}: served by the fast path`).toBe(true);
      }
    });
  }

  it("keeps the Connect shapes: trailers as trailer- headers, error JSON with details, gzip", async () => {
    const ok = await h1(servers.fast.port, { headers: JSON_TYPE, body: json({ flagKey: "f" }) });
    expect(ok.headers).toMatchObject({ "content-type": "application/json", "x-version": "7", "trailer-x-trailer": "t" });
    expect(JSON.parse(ok.body.toString())).toEqual({
      evaluation: { flagKey: "f", value: "v", variant: "on", reason: "REASON_TARGETING_MATCH" },
      version: "7",
    });
    const missing = await h1(servers.fast.port, { headers: JSON_TYPE, body: json({ flagKey: "missing" }) });
    expect(missing.headers["x-why"]).toBe("gone");
    expect(JSON.parse(missing.body.toString())).toEqual({ code: "not_found", message: 'flag "missing" not found' });
    const invalid = await h1(servers.fast.port, { headers: JSON_TYPE, body: json({ flagKey: "" }) });
    expect(JSON.parse(invalid.body.toString())).toMatchObject({ code: "invalid_argument", details: [expect.anything()] });
    const big = await h1(servers.fast.port, { headers: { ...JSON_TYPE, "accept-encoding": "gzip" }, body: json({ flagKey: "big" }) });
    expect(big.headers["content-encoding"]).toBe("gzip");
    expect(JSON.parse(gunzipSync(big.body).toString()).evaluation.value).toHaveLength(4000);
  });
});
