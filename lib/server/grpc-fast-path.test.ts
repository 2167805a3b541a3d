/**
 * The gRPC fast path (lib/server/grpc-fast-path.ts) must be indistinguishable from Connect's own
 * handling: an independent gRPC stack (@grpc/grpc-js reading proto/) and Connect's gRPC client
 * see the same values, statuses, error details, metadata and deadlines; calls the path does not
 * take (compressed, gRPC-Web, Connect) still work.
 */
import { fileURLToPath } from "node:url";
import { create } from "@bufbuild/protobuf";
import { Code, ConnectError, createClient, type Interceptor } from "@connectrpc/connect";
import { createConnectTransport, createGrpcTransport, createGrpcWebTransport } from "@connectrpc/connect-node";
import * as grpc from "@grpc/grpc-js";
import * as protoLoader from "@grpc/proto-loader";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  EvaluateAllResponseSchema,
  EvaluateResponseSchema,
  EvaluationService,
  Reason,
  WatchResponseSchema,
} from "#gen/vane/evaluation/v1/evaluation_service_pb.js";
import { createHealthRegistry } from "#lib/server/health.ts";
import { createServer, serve, type VaneServer } from "#lib/server/server.ts";
import { createTestLogger } from "#test/support/harness.ts";
import { writeProtoDeps } from "../../scripts/proto-deps.ts";

const root = fileURLToPath(new URL("../..", import.meta.url));
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

let server: VaneServer;
let baseUrl: string;
const seen: { header?: string | null; traced: number; streamAborted?: boolean } = { traced: 0 };

// Stands in for the tracing/metrics/auth interceptors: it must run on the fast path too.
const counting: Interceptor = (next) => async (req) => {
  seen.traced++;
  seen.header = req.header.get("x-test");
  const res = await next(req);
  if (!req.stream) res.trailer.set("x-trailer", "t");
  return res;
};

beforeAll(async () => {
  server = createServer({
    port: 0,
    host: "127.0.0.1",
    logger: createTestLogger(),
    health: createHealthRegistry({ cacheMs: 0 }),
    interceptors: [counting],
    services: [
      {
        ...serve(EvaluationService, {
          async evaluate(req, ctx) {
            if (req.flagKey === "slow") await new Promise((r) => ctx.signal.addEventListener("abort", r, { once: true }));
            if (req.flagKey === "missing") throw new ConnectError(`flag "missing" not found`, Code.NotFound);
            ctx.responseHeader.set("x-version", "7");
            return create(EvaluateResponseSchema, {
              evaluation: { flagKey: req.flagKey, variant: "on", reason: Reason.TARGETING_MATCH, value: { kind: { case: "boolValue", value: true } } },
              version: 7n,
            });
          },
          evaluateAll: () => create(EvaluateAllResponseSchema, {}),
          async *watch(req, ctx) {
            ctx.responseHeader.set("x-stream", "yes");
            // The test says what to do in environment_id: "<kind>-<messages>".
            const [kind, n] = req.environmentId.split("-");
            for (let i = 0; i < Number(n ?? 1); i++) yield create(WatchResponseSchema, { version: BigInt(i + 1) });
            if (kind === "error") throw new ConnectError("the environment was deleted", Code.NotFound);
            if (kind === "forever") {
              await new Promise((r) => ctx.signal.addEventListener("abort", r, { once: true }));
              seen.streamAborted = true;
            }
          },
        }),
        fastUnary: true,
      },
    ],
  });
  baseUrl = `http://127.0.0.1:${await server.listen()}`;
});
afterAll(() => server?.close());

function grpcJsClient() {
  writeProtoDeps(root);
  const def = protoLoader.loadSync("vane/evaluation/v1/evaluation_service.proto", {
    includeDirs: [`${root}proto`, `${root}proto-deps`],
    keepCase: true,
    longs: String,
    enums: String,
    defaults: true,
  });
  const pkg = grpc.loadPackageDefinition(def) as any;
  return new pkg.vane.evaluation.v1.EvaluationService(baseUrl.replace("http://", ""), grpc.credentials.createInsecure()) as grpc.Client & {
    Evaluate: (
      req: object,
      md: grpc.Metadata,
      opts: grpc.CallOptions,
      cb: (err: grpc.ServiceError | null, res: { version: string; evaluation: { variant: string } }) => void,
    ) => grpc.ClientUnaryCall;
  };
}

function callGrpcJs(client: ReturnType<typeof grpcJsClient>, req: object, opts: grpc.CallOptions = {}, md = new grpc.Metadata()) {
  return new Promise<{ res?: { version: string; evaluation: { variant: string } }; err?: grpc.ServiceError; header?: grpc.Metadata; trailer?: grpc.Metadata }>(
    (resolve) => {
      let header: grpc.Metadata | undefined;
      const call = client.Evaluate(req, md, opts, (err, res) =>
        setTimeout(() => resolve({ res: res ?? undefined, err: err ?? undefined, header, trailer }), 0),
      );
      let trailer: grpc.Metadata | undefined;
      call.on("metadata", (m) => (header = m));
      call.on("status", (s) => (trailer = s.metadata));
    },
  );
}

describe("gRPC fast path", () => {
  it("answers @grpc/grpc-js with the message, headers and trailers, through the interceptors", async () => {
    const client = grpcJsClient();
    try {
      const before = seen.traced;
      const md = new grpc.Metadata();
      md.set("x-test", "hello");
      const { res, err, header, trailer } = await callGrpcJs(client, { flag_key: "f", context: { fields: { targetingKey: { stringValue: "u" } } } }, {}, md);
      expect(err).toBeUndefined();
      expect(res).toMatchObject({ version: "7", evaluation: { variant: "on" } });
      expect(header?.get("x-version")).toEqual(["7"]);
      expect(trailer?.get("x-trailer")).toEqual(["t"]);
      expect(seen.traced).toBe(before + 1);
      expect(seen.header).toBe("hello");
    } finally {
      client.close();
    }
  });

  it("reports statuses, validation details and deadlines as Connect does", async () => {
    const client = grpcJsClient();
    try {
      expect((await callGrpcJs(client, { flag_key: "missing" })).err).toMatchObject({ code: grpc.status.NOT_FOUND, details: 'flag "missing" not found' });
      const invalid = await callGrpcJs(client, { flag_key: "" });
      expect(invalid.err).toMatchObject({ code: grpc.status.INVALID_ARGUMENT });
      expect(invalid.err!.details).toMatch(/^flag_key: /);
      expect(invalid.err!.metadata.get("grpc-status-details-bin")).toHaveLength(1);
      expect((await callGrpcJs(client, { flag_key: "slow" }, { deadline: Date.now() + 150 })).err).toMatchObject({ code: grpc.status.DEADLINE_EXCEEDED });
    } finally {
      client.close();
    }
    // Connect's gRPC client decodes the same error details.
    const connect = createClient(EvaluationService, createGrpcTransport({ baseUrl }));
    const notFound = await connect.evaluate({ flagKey: "missing" }).then(
      () => undefined,
      (e: unknown) => ConnectError.from(e),
    );
    expect(notFound?.rawMessage).toBe('flag "missing" not found');
    const err = await connect.evaluate({ flagKey: "" }).then(
      () => undefined,
      (e: unknown) => ConnectError.from(e),
    );
    expect(err).toMatchObject({ code: Code.InvalidArgument });
    expect(err!.details.length).toBeGreaterThan(0);
  });

  it("leaves compressed calls, gRPC-Web and Connect to the normal path, which answers them alike", async () => {
    const client = grpcJsClient();
    try {
      const md = new grpc.Metadata();
      md.set("grpc-internal-encoding-request", "gzip");
      const { res, err } = await callGrpcJs(client, { flag_key: "gz" }, {}, md);
      expect(err).toBeUndefined();
      expect(res?.evaluation.variant).toBe("on");
    } finally {
      client.close();
    }
    for (const transport of [
      createGrpcWebTransport({ baseUrl, httpVersion: "1.1" }),
      createConnectTransport({ baseUrl, httpVersion: "1.1" }),
      createGrpcTransport({ baseUrl }),
    ]) {
      const res = await createClient(EvaluationService, transport).evaluate({ flagKey: "f" });
      expect(res.version).toBe(7n);
    }
  });

  it("counts calls in flight for a graceful shutdown", async () => {
    const own = createServer({
      port: 0,
      host: "127.0.0.1",
      logger: createTestLogger(),
      health: createHealthRegistry({ cacheMs: 0 }),
      services: [
        {
          ...serve(EvaluationService, {
            async evaluate() {
              await sleep(300);
              return create(EvaluateResponseSchema, { version: 1n });
            },
            evaluateAll: () => create(EvaluateAllResponseSchema, {}),
            async *watch() {},
          }),
          fastUnary: true,
        },
      ],
    });
    const port = await own.listen();
    const client = createClient(EvaluationService, createGrpcTransport({ baseUrl: `http://127.0.0.1:${port}` }));
    const inFlight = client.evaluate({ flagKey: "f" });
    await sleep(50);
    const closed = own.close();
    await expect(inFlight).resolves.toMatchObject({ version: 1n });
    await closed;
  });

  it("streams server messages to @grpc/grpc-js and Connect's client, then the status", async () => {
    const client = grpcJsClient() as unknown as grpc.Client & { Watch: (req: object, md?: grpc.Metadata) => grpc.ClientReadableStream<{ version: string }> };
    try {
      const read = (req: object) =>
        new Promise<{ versions: string[]; status: grpc.StatusObject; header?: grpc.Metadata }>((resolve) => {
          const versions: string[] = [];
          let header: grpc.Metadata | undefined;
          const call = client.Watch(req);
          call.on("metadata", (m) => (header = m));
          call.on("data", (m) => versions.push(m.version));
          call.on("error", () => undefined);
          call.on("status", (status) => resolve({ versions, status, header }));
        });
      const ok = await read({ environment_id: "stream-3" });
      expect(ok.versions).toEqual(["1", "2", "3"]);
      expect(ok.status.code).toBe(grpc.status.OK);
      expect(ok.header?.get("x-stream")).toEqual(["yes"]);
      const failed = await read({ environment_id: "error-2" });
      expect(failed.versions).toEqual(["1", "2"]);
      expect(failed.status).toMatchObject({ code: grpc.status.NOT_FOUND, details: "the environment was deleted" });
    } finally {
      client.close();
    }
    const connect = createClient(EvaluationService, createGrpcTransport({ baseUrl }));
    const versions: bigint[] = [];
    for await (const m of connect.watch({ environmentId: "stream-2" })) versions.push(m.version);
    expect(versions).toEqual([1n, 2n]);
  });

  it("aborts the handler's signal when the client cancels a stream", async () => {
    seen.streamAborted = false;
    const connect = createClient(EvaluationService, createGrpcTransport({ baseUrl }));
    const cancel = new AbortController();
    const stream = connect.watch({ environmentId: "forever-1" }, { signal: cancel.signal });
    for await (const m of stream) {
      expect(m.version).toBe(1n);
      cancel.abort();
      break;
    }
    for (let i = 0; i < 100 && !seen.streamAborted; i++) await sleep(20);
    expect(seen.streamAborted).toBe(true);
  });

  it("applies the default deadline and ends server streams with UNAVAILABLE on shutdown", async () => {
    let deadlineSeen: unknown;
    const own = createServer({
      port: 0,
      host: "127.0.0.1",
      logger: createTestLogger(),
      health: createHealthRegistry({ cacheMs: 0 }),
      defaultTimeoutMs: 100,
      shutdownTimeoutMs: 200,
      services: [
        {
          ...serve(EvaluationService, {
            async evaluate(_req, ctx) {
              await new Promise((r) => ctx.signal.addEventListener("abort", r, { once: true }));
              deadlineSeen = ctx.signal.reason;
              return create(EvaluateResponseSchema, {});
            },
            evaluateAll: () => create(EvaluateAllResponseSchema, {}),
            async *watch(_req, ctx) {
              yield create(WatchResponseSchema, { version: 1n });
              await new Promise((r) => ctx.signal.addEventListener("abort", r, { once: true }));
            },
          }),
          fastUnary: true,
        },
      ],
    });
    const port = await own.listen();
    const client = createClient(EvaluationService, createGrpcTransport({ baseUrl: `http://127.0.0.1:${port}` }));
    await expect(client.evaluate({ flagKey: "f" })).rejects.toMatchObject({ code: Code.DeadlineExceeded });
    expect(deadlineSeen).toMatchObject({ code: Code.DeadlineExceeded });
    const stream = client.watch({})[Symbol.asyncIterator]();
    expect((await stream.next()).value?.version).toBe(1n);
    const closed = own.close();
    await expect(stream.next()).rejects.toMatchObject({ code: Code.Unavailable });
    await closed;
  });
});
