/**
 * Failures are answered with the code the contract promises, and every INTERNAL leaves one log
 * line: a real Postgres outage (a TCP proxy in front of the shared Postgres, closed and
 * reopened; the shared server is never touched) makes a real service answer UNAVAILABLE and
 * serve again afterwards; a statement timeout is UNAVAILABLE; an unexpected error is INTERNAL
 * with the trace id for the caller and the cause, redacted, in the log.
 */
import * as net from "node:net";
import { Writable } from "node:stream";
import { create } from "@bufbuild/protobuf";
import { Code, ConnectError, createClient } from "@connectrpc/connect";
import { createConnectTransport, createGrpcTransport } from "@connectrpc/connect-node";
import { sql } from "kysely";
import { pino } from "pino";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { EvaluateAllResponseSchema, EvaluateResponseSchema, EvaluationService, WatchResponseSchema } from "#gen/vane/evaluation/v1/evaluation_service_pb.js";
import { AuthService, WhoAmIResponseSchema } from "#gen/vane/identity/v1/auth_service_pb.js";
import { IdentityService } from "#gen/vane/identity/v1/identity_service_pb.js";
import { createTokenVerifier } from "#lib/auth/auth.ts";
import { createEnvReader } from "#lib/process/config.ts";
import { createDatabase, type Database } from "#lib/data/db.ts";
import { createHealthRegistry } from "#lib/server/health.ts";
import { redactSecrets } from "#lib/server/rpc-errors.ts";
import { createRpcMetricsInterceptor, createTracingInterceptor } from "#lib/server/rpc-telemetry.ts";
import { createServer, serve, type VaneServer } from "#lib/server/server.ts";
import { readCommonConfig } from "#lib/process/service-config.ts";
import { startModules, type RunningModules } from "#lib/process/service-module.ts";
import { startTelemetry } from "#lib/process/telemetry.ts";
import { dropSchema, failure, testDatabaseUrl, uniqueName } from "#test/support/harness.ts";
import { readIdentityConfig } from "../../services/identity/config.ts";
import { createIdentityModule, type IdentityModule } from "../../services/identity/module.ts";

const telemetry = startTelemetry({ serviceName: "rpc-errors-test", env: {} });
afterAll(() => telemetry.shutdown());

/** A TCP proxy to the shared Postgres that a test can cut (connections refused) and restore. */
async function postgresProxy() {
  const target = new URL(testDatabaseUrl);
  const sockets = new Set<net.Socket>();
  let stall = false;
  const server = net.createServer((client) => {
    sockets.add(client);
    client.on("close", () => sockets.delete(client)).on("error", () => undefined);
    // Accepts, and never answers: a network black hole.
    if (stall) return;
    const upstream = net.connect(Number(target.port || 5432), target.hostname);
    sockets.add(upstream);
    upstream.on("close", () => (sockets.delete(upstream), client.destroy())).on("error", () => undefined);
    client.on("close", () => upstream.destroy());
    client.pipe(upstream).pipe(client);
  });
  const listen = (p: number) => new Promise<number>((resolve) => server.listen(p, "127.0.0.1", () => resolve((server.address() as net.AddressInfo).port)));
  const port = await listen(0);
  const dropAll = () => {
    for (const s of sockets) s.destroy();
  };
  return {
    url: (() => {
      const u = new URL(testDatabaseUrl);
      u.hostname = "127.0.0.1";
      u.port = String(port);
      return u.toString();
    })(),
    /** Refuses new connections and drops the open ones, like a Postgres that went down. */
    async cut() {
      await new Promise<void>((resolve) => {
        server.close(() => resolve());
        dropAll();
      });
    },
    async restore() {
      stall = false;
      await listen(port);
    },
    /** Drops the open connections and swallows new ones without answering. */
    blackHole() {
      stall = true;
      dropAll();
    },
    close: () => new Promise<void>((resolve) => (dropAll(), server.close(() => resolve()))),
  };
}

/** A logger whose JSON lines the test reads. */
function capturingLogger() {
  const lines: Record<string, unknown>[] = [];
  const sink = new Writable({
    write(chunk: Buffer, _enc, done) {
      for (const line of chunk.toString("utf8").split("\n")) if (line.trim()) lines.push(JSON.parse(line) as Record<string, unknown>);
      done();
    },
  });
  return { logger: pino({ level: "info" }, sink), lines };
}

describe("a service whose Postgres goes away", () => {
  let proxy: Awaited<ReturnType<typeof postgresProxy>>;
  let module: IdentityModule;
  let running: RunningModules;
  const schema = uniqueName("rpc_errors_identity");
  const { logger, lines } = capturingLogger();

  beforeAll(async () => {
    proxy = await postgresProxy();
    const reader = createEnvReader({ VANE_PORT: "0", VANE_HOST: "127.0.0.1", VANE_DRAIN_DELAY: "0s" });
    const common = readCommonConfig(reader);
    module = await createIdentityModule({
      databaseUrl: proxy.url,
      schema,
      tokenIssuer: common.tokenIssuer,
      migrate: true,
      config: readIdentityConfig(reader),
      logger,
    });
    running = await startModules({
      config: common,
      logger,
      modules: [module],
      verifier: createTokenVerifier({ issuer: common.tokenIssuer, keys: module.keys.keySet }),
    });
  });
  afterAll(async () => {
    await running?.stop();
    await proxy?.close();
    await dropSchema(testDatabaseUrl, schema);
  });

  it("answers UNAVAILABLE saying to retry, logs no INTERNAL, and serves again once it is back", async () => {
    const orgId = crypto.randomUUID();
    const userId = crypto.randomUUID();
    const db = module.database.db;
    await db
      .insertInto("organizations")
      .values({ id: orgId, name: "Outage", slug: uniqueName("outage").replace(/_/g, "-") })
      .execute();
    await db
      .insertInto("users")
      .values({ id: userId, email: `${uniqueName("owner")}@example.com` })
      .execute();
    await db.insertInto("members").values({ id: crypto.randomUUID(), organization_id: orgId, user_id: userId, role: "owner" }).execute();
    const { token } = await module.keys.sign({ sub: userId, org: orgId, role: "owner", kind: "user" }, 60_000);
    const baseUrl = `http://127.0.0.1:${running.port}`;
    const listOverJson = () =>
      fetch(`${baseUrl}/vane.identity.v1.IdentityService/ListProjects`, {
        method: "POST",
        headers: { "content-type": "application/json", authorization: `Bearer ${token}` },
        body: JSON.stringify({ organizationId: orgId }),
      });
    const grpcClient = createClient(
      IdentityService,
      createGrpcTransport({ baseUrl, interceptors: [(next) => (req) => (req.header.set("authorization", `Bearer ${token}`), next(req))] }),
    );
    expect((await listOverJson()).status).toBe(200);

    await proxy.cut();
    const down = await listOverJson();
    expect(down.status).toBe(503);
    expect(await down.json()).toEqual({ code: "unavailable", message: "the database is unavailable; retry later" });
    expect(await failure(grpcClient.listProjects({ organizationId: orgId }))).toMatchObject({
      code: Code.Unavailable,
      rawMessage: "the database is unavailable; retry later",
    });
    expect(lines.filter((l) => l.level === 50)).toEqual([]);
    expect(
      lines.filter((l) => l.msg === "RPC failed: the database is unavailable; retry later" && l.rpc === "vane.identity.v1.IdentityService/ListProjects"),
    ).toHaveLength(2);

    await proxy.restore();
    expect((await grpcClient.listProjects({ organizationId: orgId })).projects).toEqual([]);
  });
});

describe("the kit's answers", () => {
  let proxy: Awaited<ReturnType<typeof postgresProxy>>;
  let database: Database<unknown>;
  let server: VaneServer;
  let baseUrl: string;
  const schema = uniqueName("rpc_errors");
  const { logger, lines } = capturingLogger();
  const secretful =
    "cannot reach postgres://vane:hunter2@db.internal/vane (password=hunter2) for Bearer eyJhbGciOiJFUzI1NiJ9.eyJzdWIiOiJ4In0.c2ln with vane_server_Zx81kQ0pL2mN4bV7";

  beforeAll(async () => {
    proxy = await postgresProxy();
    database = await createDatabase({ url: proxy.url, schema, connectTimeoutMs: 300 });
    server = createServer({
      port: 0,
      host: "127.0.0.1",
      logger,
      health: createHealthRegistry({ cacheMs: 0 }),
      interceptors: [createTracingInterceptor(), createRpcMetricsInterceptor()],
      services: [
        serve(AuthService, {
          async whoAmI() {
            await sql`select 1`.execute(database.db);
            return create(WhoAmIResponseSchema, {});
          },
          async exchangeApiKey() {
            await database.db.transaction().execute(async (trx) => {
              await sql`set local statement_timeout = 20`.execute(trx);
              await sql`select pg_sleep(5)`.execute(trx);
            });
            throw new ConnectError("unreachable", Code.Unimplemented);
          },
          exchangeOidcToken() {
            throw new Error(secretful);
          },
          getSignInOptions() {
            throw new ConnectError("unused", Code.Unimplemented);
          },
        }),
        {
          ...serve(EvaluationService, {
            evaluate(req) {
              // A value protobuf cannot encode: Connect fails serialising the response.
              if (req.flagKey === "unencodable") return create(EvaluateResponseSchema, { version: "not a number" as unknown as bigint });
              throw new TypeError(`cannot read properties of undefined (reading 'rules') for ${secretful}`);
            },
            evaluateAll: () => create(EvaluateAllResponseSchema, {}),
            async *watch() {
              yield create(WatchResponseSchema, { version: 1n });
              throw new Error("the snapshot store went away");
            },
          }),
          fastUnary: true,
        },
      ],
    });
    baseUrl = `http://127.0.0.1:${await server.listen()}`;
  });
  afterAll(async () => {
    await server?.close();
    await database?.destroy();
    await proxy?.close();
    await dropSchema(testDatabaseUrl, schema);
  });

  const errorLines = () => lines.filter((l) => l.level === 50);

  it("a pool that cannot get a connection in time (the network swallows them) is UNAVAILABLE", async () => {
    const client = createClient(AuthService, createConnectTransport({ baseUrl, httpVersion: "1.1" }));
    await client.whoAmI({});
    proxy.blackHole();
    try {
      expect(await failure(client.whoAmI({}))).toMatchObject({ code: Code.Unavailable, rawMessage: "the database is unavailable; retry later" });
    } finally {
      await proxy.cut();
      await proxy.restore();
    }
    await client.whoAmI({});
  });

  it("a statement timeout is UNAVAILABLE", async () => {
    const client = createClient(AuthService, createGrpcTransport({ baseUrl }));
    expect(await failure(client.exchangeApiKey({ apiKey: "a".repeat(24) }))).toMatchObject({
      code: Code.Unavailable,
      rawMessage: "the database did not answer in time (statement timeout); retry later",
    });
  });

  it("an unexpected error is INTERNAL: the trace id for the caller, the cause for the log (redacted), once", async () => {
    const traceId = "4bf92f3577b34da6a3ce929d0e0e4736";
    const traced = { traceparent: `00-${traceId}-00f067aa0ba902b7-01` };
    const before = errorLines().length;
    const res = await fetch(`${baseUrl}/vane.identity.v1.AuthService/ExchangeOidcToken`, {
      method: "POST",
      headers: { "content-type": "application/json", ...traced },
      body: JSON.stringify({ idToken: "x".repeat(30), organizationId: crypto.randomUUID() }),
    });
    expect(res.status).toBe(500);
    expect(await res.json()).toEqual({ code: "internal", message: `internal error (trace id ${traceId})` });
    const logged = errorLines().slice(before);
    expect(logged).toHaveLength(1);
    expect(logged[0]).toMatchObject({ rpc: "vane.identity.v1.AuthService/ExchangeOidcToken", code: "internal", traceId, msg: "RPC failed: internal error" });
    expect(logged[0].cause).toBe(redactSecrets(secretful));
    const text = JSON.stringify(logged[0]);
    for (const secret of ["hunter2", "eyJzdWIiOiJ4In0", "Zx81kQ0pL2mN4bV7"]) expect(text).not.toContain(secret);
  });

  it("the same through the gRPC fast path, for a unary call and in the middle of a stream", async () => {
    const client = createClient(EvaluationService, createGrpcTransport({ baseUrl }));
    const before = errorLines().length;
    const err = await failure(client.evaluate({ flagKey: "f" }));
    expect(err.code).toBe(Code.Internal);
    expect(err.rawMessage).toMatch(/^internal error \(trace id [0-9a-f]{32}\)$/);
    const versions: bigint[] = [];
    const streamErr = await failure(
      (async () => {
        for await (const m of client.watch({})) versions.push(m.version);
      })(),
    );
    expect(versions).toEqual([1n]);
    expect(streamErr.code).toBe(Code.Internal);
    const logged = errorLines().slice(before);
    expect(logged.map((l) => [l.rpc, l.cause])).toEqual([
      ["vane.evaluation.v1.EvaluationService/Evaluate", redactSecrets(`cannot read properties of undefined (reading 'rules') for ${secretful}`)],
      ["vane.evaluation.v1.EvaluationService/Watch", "the snapshot store went away"],
    ]);
    expect(logged[0].traceId).toBe(/trace id ([0-9a-f]{32})/.exec(err.rawMessage)![1]);
  });

  it("an INTERNAL raised by Connect itself (a response it cannot serialise) is logged too", async () => {
    const before = errorLines().length;
    const client = createClient(EvaluationService, createConnectTransport({ baseUrl, httpVersion: "1.1", useBinaryFormat: true }));
    expect((await failure(client.evaluate({ flagKey: "unencodable" }))).code).toBe(Code.Internal);
    const logged = errorLines().slice(before);
    expect(logged).toHaveLength(1);
    expect(logged[0]).toMatchObject({ rpc: "vane.evaluation.v1.EvaluationService/Evaluate", code: "internal" });
  });

  it("redacts credentials in any text", () => {
    expect(redactSecrets(secretful)).toBe("cannot reach postgres://vane:***@db.internal/vane (password=***) for Bearer *** with vane_server_***");
    expect(redactSecrets("token: abc.def and nats://user:pw@nats:4222")).toBe("token: *** and nats://user:***@nats:4222");
  });
});
