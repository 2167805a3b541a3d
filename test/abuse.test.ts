/**
 * Abuse of the public API, against `npm start` in a child process: oversized and deeply nested
 * inputs, catastrophic patterns, invalid encodings, malformed frames, and every kind of bad
 * credential on every RPC of the contract. Each answer must be the protocol's defined error —
 * never INTERNAL, never a hang — and the process must stay healthy: health SERVING and a normal
 * evaluation answered after every case.
 */
import { connect as http2Connect } from "node:http2";
import type { DescService } from "@bufbuild/protobuf";
import { Code, ConnectError, createClient, type Interceptor } from "@connectrpc/connect";
import { createGrpcTransport } from "@connectrpc/connect-node";
import { SignJWT, generateKeyPair } from "jose";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Health, HealthCheckResponse_ServingStatus } from "#gen/grpc/health/v1/health_pb.js";
import { EvaluationService } from "#gen/vane/evaluation/v1/evaluation_service_pb.js";
import { EventService } from "#gen/vane/events/v1/event_service_pb.js";
import { ExperimentService } from "#gen/vane/experiments/v1/experiment_service_pb.js";
import { ChangeService } from "#gen/vane/flags/v1/change_service_pb.js";
import { FlagService } from "#gen/vane/flags/v1/flag_service_pb.js";
import { SegmentService } from "#gen/vane/flags/v1/segment_service_pb.js";
import { AuthService } from "#gen/vane/identity/v1/auth_service_pb.js";
import { IdentityService } from "#gen/vane/identity/v1/identity_service_pb.js";
import { adminSession, type JsonCall, startVane, type VaneProcess } from "./vane-process.ts";

let vane: VaneProcess;
let baseUrl: string;
let call: JsonCall;
let owner: string;
let serverKey: string;
let serverToken: string;
let environmentId: string;
let projectId: string;

beforeAll(async () => {
  vane = startVane();
  const started = await vane.started();
  baseUrl = started.baseUrl;
  const session = await adminSession(started, "development");
  ({ call, accessToken: owner, environmentId, projectId } = session);
  serverKey = (
    await call<{ secret: string }>("vane.identity.v1.IdentityService/CreateApiKey", { environmentId, kind: "API_KEY_KIND_SERVER", name: "abuse" }, owner)
  ).secret;
  serverToken = (await call<{ accessToken: string }>("vane.identity.v1.AuthService/ExchangeApiKey", { apiKey: serverKey })).accessToken;
  const variants = [
    { key: "on", value: true },
    { key: "off", value: false },
  ];
  await call("vane.flags.v1.FlagService/CreateFlag", { projectId, key: "healthy", name: "h", type: "FLAG_TYPE_BOOLEAN", variants }, owner);
  await call("vane.flags.v1.FlagService/UpdateFlagEnvironment", { environmentId, flagKey: "healthy", enabled: true, defaultVariant: "on" }, owner);
  await call("vane.flags.v1.FlagService/CreateFlag", { projectId, key: "redos", name: "r", type: "FLAG_TYPE_BOOLEAN", variants }, owner);
  await call(
    "vane.flags.v1.FlagService/UpdateFlagEnvironment",
    {
      environmentId,
      flagKey: "redos",
      enabled: true,
      defaultVariant: "off",
      rules: ["(a|a)*$", "(a|aa)+$", "(x+x+)+y"].map((pattern) => ({
        conditions: [{ attribute: { attribute: "s", operator: "OPERATOR_MATCHES", values: [pattern] } }],
        outcome: { variant: "on" },
      })),
    },
    owner,
  );
}, 120_000);
afterAll(() => vane?.cleanup());

/** A Connect unary call with a raw body: status and the error's code. */
async function raw(path: string, body: string | Buffer, headers: Record<string, string>, token: string | undefined = serverToken) {
  const res = await fetch(`${baseUrl}/${path}`, { method: "POST", headers: { ...headers, ...(token ? { authorization: `Bearer ${token}` } : {}) }, body });
  const text = await res.text();
  let code: string | undefined;
  try {
    code = (JSON.parse(text) as { code?: string }).code;
  } catch {
    code = undefined;
  }
  return { status: res.status, code, text };
}

/** The process is still healthy: health SERVING, a normal evaluation answered. */
async function stillHealthy() {
  const health = createClient(Health, createGrpcTransport({ baseUrl }));
  expect((await health.check({ service: "" }, { timeoutMs: 5_000 })).status).toBe(HealthCheckResponse_ServingStatus.SERVING);
  const r = await raw("vane.evaluation.v1.EvaluationService/Evaluate", JSON.stringify({ flagKey: "healthy", context: { targetingKey: "u" } }), {
    "content-type": "application/json",
  });
  expect(r.status, r.text).toBe(200);
}

const json = { "content-type": "application/json" };
const nested = (levels: number, open = "[", close = "]") => `${open.repeat(levels)}${close.repeat(levels)}`;

describe("abuse of the public API", () => {
  const cases: [string, () => Promise<{ status: number; code?: string; text: string }>, string][] = [
    [
      "a body over the read limit",
      () => raw("vane.flags.v1.FlagService/ImportFlagd", JSON.stringify({ environmentId, flagdJson: "x".repeat(6 << 20) }), json, owner),
      "resource_exhausted",
    ],
    [
      "a flagd file nested 5,000 levels",
      () =>
        raw(
          "vane.flags.v1.FlagService/ImportFlagd",
          JSON.stringify({
            environmentId,
            flagdJson: `{"flags":{"f":{"state":"ENABLED","variants":{"a":true},"defaultVariant":"a","targeting":${nested(5_000)}}}}`,
          }),
          json,
          owner,
        ),
      "invalid_argument",
    ],
    [
      "a context nested 1,000 levels",
      () =>
        raw(
          "vane.evaluation.v1.EvaluationService/Evaluate",
          `{"flagKey":"healthy","context":{"a":${nested(1_000, '{"a":', "}").replace(/\{"a":\}/, '{"a":1}')}}}`,
          json,
        ),
      "invalid_argument",
    ],
    [
      "a context nested 1,000,000 levels",
      () => raw("vane.evaluation.v1.EvaluationService/Evaluate", `{"flagKey":"healthy","context":{"a":${nested(1_000_000)}}}`, json),
      "invalid_argument",
    ],
    [
      "a targeting key of 100,000 characters",
      () => raw("vane.evaluation.v1.EvaluationService/Evaluate", JSON.stringify({ flagKey: "healthy", context: { targetingKey: "k".repeat(100_000) } }), json),
      "invalid_argument",
    ],
    [
      "a flag key of 10,000 characters",
      () => raw("vane.evaluation.v1.EvaluationService/Evaluate", JSON.stringify({ flagKey: "f".repeat(10_000) }), json),
      "invalid_argument",
    ],
    [
      "invalid UTF-8 in a JSON body",
      () =>
        raw(
          "vane.evaluation.v1.EvaluationService/Evaluate",
          Buffer.from([0x7b, 0x22, 0x66, 0x6c, 0x61, 0x67, 0x4b, 0x65, 0x79, 0x22, 0x3a, 0x22, 0xff, 0xfe, 0x22, 0x7d]),
          json,
        ),
      "invalid_argument",
    ],
    [
      "garbage protobuf",
      () =>
        raw("vane.evaluation.v1.EvaluationService/Evaluate", Buffer.from([0x0a, 0xff, 0xff, 0xff, 0xff, 0x0f, 0x01]), { "content-type": "application/proto" }),
      "invalid_argument",
    ],
    ["JSON that is not an object", () => raw("vane.evaluation.v1.EvaluationService/Evaluate", "[1,2,3]", json), "invalid_argument"],
    ["an unknown compression", () => raw("vane.evaluation.v1.EvaluationService/Evaluate", "{}", { ...json, "content-encoding": "lzma" }), "unimplemented"],
    [
      "a body that claims gzip and is not",
      () => raw("vane.evaluation.v1.EvaluationService/Evaluate", "not gzip at all", { ...json, "content-encoding": "gzip" }),
      "invalid_argument",
    ],
  ];

  it.each(cases)("answers %s with its defined error, and stays healthy", async (_, send, code) => {
    const r = await send();
    expect({ code: r.code, text: r.text.slice(0, 300) }).toMatchObject({ code });
    await stillHealthy();
  });

  it("answers a wrong content type with HTTP 415, and stays healthy", async () => {
    const r = await raw("vane.evaluation.v1.EvaluationService/Evaluate", "{}", { "content-type": "text/plain" });
    expect(r.status).toBe(415);
    await stillHealthy();
  });

  it("matches catastrophic patterns in linear time on long inputs", async () => {
    for (const s of ["a".repeat(16_000) + "b", "x".repeat(16_000)]) {
      const r = await raw("vane.evaluation.v1.EvaluationService/Evaluate", JSON.stringify({ flagKey: "redos", context: { targetingKey: "u", s } }), json);
      expect(r.status, r.text).toBe(200);
    }
    await stillHealthy();
  });

  it("answers malformed gRPC frames with INVALID_ARGUMENT (or a defined protocol error), never INTERNAL", async () => {
    const frames: [string, Buffer][] = [
      ["a length prefix larger than the body", Buffer.concat([Buffer.from([0, 0, 0, 1, 0]), Buffer.from([0x0a, 0x01])])],
      ["a truncated prefix", Buffer.from([0, 0, 0])],
      ["the compressed flag without negotiated compression", Buffer.concat([Buffer.from([1, 0, 0, 0, 2]), Buffer.from([0x0a, 0x00])])],
      ["garbage in a well-formed frame", Buffer.concat([Buffer.from([0, 0, 0, 0, 4]), Buffer.from([0x0a, 0xff, 0xff, 0xff])])],
    ];
    for (const [what, body] of frames) {
      const status = await new Promise<string>((resolve, reject) => {
        const session = http2Connect(baseUrl);
        session.on("error", reject);
        const req = session.request({
          ":method": "POST",
          ":path": "/vane.evaluation.v1.EvaluationService/Evaluate",
          "content-type": "application/grpc",
          te: "trailers",
          authorization: `Bearer ${serverToken}`,
        });
        let grpcStatus = "";
        req.on("response", (h) => (grpcStatus = String(h["grpc-status"] ?? grpcStatus)));
        req.on("trailers", (t) => (grpcStatus = String(t["grpc-status"] ?? grpcStatus)));
        req.on("data", () => undefined);
        req.on("end", () => {
          session.close();
          resolve(grpcStatus);
        });
        req.end(body);
      });
      expect([String(Code.InvalidArgument), String(Code.Unimplemented), String(Code.ResourceExhausted)], `${what}: grpc-status ${status}`).toContain(status);
    }
    await stillHealthy();
  });

  it("refuses every kind of bad credential on every RPC of the contract", async () => {
    const { privateKey } = await generateKeyPair("ES256");
    const forged = await new SignJWT({ org: "x", kind: "server", env: environmentId })
      .setProtectedHeader({ alg: "ES256", kid: "forged" })
      .setIssuer("vane")
      .setAudience("vane")
      .setSubject("s")
      .setExpirationTime("5m")
      .sign(privateKey);
    const [header, payload] = serverToken.split(".");
    const tampered = `${header}.${Buffer.from(JSON.stringify({ ...JSON.parse(Buffer.from(payload, "base64url").toString()), kind: "admin" })).toString("base64url")}.${serverToken.split(".")[2]}`;
    const credentials: [string, string | undefined][] = [
      ["none", undefined],
      ["a malformed header", "Token abc"],
      ["garbage", "Bearer not.a.jwt"],
      ["a token signed by another key", `Bearer ${forged}`],
      ["a tampered token", `Bearer ${tampered}`],
      ["an API key instead of a token", `Bearer ${serverKey}`],
    ];
    const services: DescService[] = [
      IdentityService,
      FlagService,
      SegmentService,
      ChangeService,
      EvaluationService,
      EventService,
      ExperimentService,
      AuthService,
    ];
    // What anyone may call: exchanging a credential for a token, and learning how to sign in.
    const open = new Set([
      "vane.identity.v1.AuthService/ExchangeApiKey",
      "vane.identity.v1.AuthService/ExchangeOidcToken",
      "vane.identity.v1.AuthService/GetSignInOptions",
    ]);
    let checked = 0;
    for (const [what, authorization] of credentials) {
      const withAuth: Interceptor = (next) => (req) => {
        if (authorization) req.header.set("authorization", authorization);
        return next(req);
      };
      const transport = createGrpcTransport({ baseUrl, interceptors: [withAuth] });
      for (const service of services) {
        const client = createClient(service, transport) as unknown as Record<string, (req: object, o?: object) => unknown>;
        for (const method of service.methods) {
          const path = `${service.typeName}/${method.name}`;
          if (open.has(path)) continue;
          let code: Code | undefined;
          try {
            const res = client[method.localName]({}, { timeoutMs: 5_000 });
            if (method.methodKind === "server_streaming") for await (const _ of res as AsyncIterable<unknown>) break;
            else await res;
          } catch (err) {
            code = ConnectError.from(err).code;
          }
          expect({ path, what, code }).toEqual({ path, what, code: Code.Unauthenticated });
          checked++;
        }
      }
    }
    expect(checked).toBeGreaterThan(6 * 40);
    await stillHealthy();
  }, 120_000);
});
