import { create } from "@bufbuild/protobuf";
import { Code, ConnectError, createClient } from "@connectrpc/connect";
import { createGrpcTransport } from "@connectrpc/connect-node";
import { afterEach, describe, expect, it } from "vitest";
import { Health, HealthCheckResponse_ServingStatus as Status } from "#gen/grpc/health/v1/health_pb.js";
import { AuthService, WhoAmIResponseSchema } from "#gen/vane/identity/v1/auth_service_pb.js";
import { createHealthRegistry, type HealthRegistry } from "#lib/server/health.ts";
import { createServer, serve, type VaneServer } from "#lib/server/server.ts";
import { createTestLogger } from "#test/support/harness.ts";

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Lets a test hold a call inside its handler: `entered` once it is there, until `released`. */
interface Gate {
  entered(): void;
  released: Promise<void>;
}

/** A server whose WhoAmI takes `delayMs` (or waits at `gate`), standing in for any slow RPC. */
function slowServer(delayMs: number, health: HealthRegistry = createHealthRegistry({ cacheMs: 0 }), defaultTimeoutMs?: number, gate?: Gate) {
  return createServer({
    port: 0,
    host: "127.0.0.1",
    logger: createTestLogger(),
    health,
    defaultTimeoutMs,
    services: [
      serve(AuthService, {
        async whoAmI() {
          gate?.entered();
          await (gate ? gate.released : sleep(delayMs));
          return create(WhoAmIResponseSchema, {});
        },
        exchangeApiKey() {
          throw new ConnectError("unused", Code.Unimplemented);
        },
        exchangeOidcToken() {
          throw new ConnectError("unused", Code.Unimplemented);
        },
        getSignInOptions() {
          throw new ConnectError("unused", Code.Unimplemented);
        },
      }),
    ],
  });
}

describe("server", () => {
  let server: VaneServer | undefined;
  afterEach(async () => {
    await server?.close();
    server = undefined;
  });

  it("finishes in-flight calls on shutdown, then refuses new ones", async () => {
    let entered!: () => void;
    const inHandler = new Promise<void>((resolve) => (entered = resolve));
    let release!: () => void;
    const released = new Promise<void>((resolve) => (release = resolve));
    server = slowServer(0, undefined, undefined, { entered, released });
    const port = await server.listen();
    const client = createClient(AuthService, createGrpcTransport({ baseUrl: `http://127.0.0.1:${port}` }));
    const inFlight = client.whoAmI({});
    // Shut down once the call is inside its handler (not merely sent), then let it finish.
    await inHandler;
    const closed = server.close();
    release();
    await expect(inFlight).resolves.toBeDefined();
    await closed;
    const fresh = createClient(AuthService, createGrpcTransport({ baseUrl: `http://127.0.0.1:${port}` }));
    await expect(fresh.whoAmI({})).rejects.toMatchObject({ code: Code.Unavailable });
  });

  it("reports NOT_SERVING as soon as shutdown begins", async () => {
    const health = createHealthRegistry({ cacheMs: 0 });
    // The drain delay only has to outlast one health check, even on a loaded machine.
    server = createServer({ port: 0, host: "127.0.0.1", logger: createTestLogger(), health, services: [], drainDelayMs: 2_000 });
    const port = await server.listen();
    const client = createClient(Health, createGrpcTransport({ baseUrl: `http://127.0.0.1:${port}` }));
    expect((await client.check({})).status).toBe(Status.SERVING);
    const closed = server.close();
    expect((await client.check({})).status).toBe(Status.NOT_SERVING);
    await closed;
  });

  it("fails readiness with the failing check's reason, and health follows", async () => {
    const health = createHealthRegistry({ cacheMs: 0 });
    let dbUp = false;
    health.addCheck("postgres", async () => {
      if (!dbUp) throw new Error("connection refused");
    });
    server = createServer({ port: 0, host: "127.0.0.1", logger: createTestLogger(), health, services: [] });
    const port = await server.listen();
    const res = await fetch(`http://127.0.0.1:${port}/readyz`);
    expect(res.status).toBe(503);
    expect(await res.json()).toEqual({ ready: false, failing: { postgres: "connection refused" } });
    expect((await fetch(`http://127.0.0.1:${port}/healthz`)).status).toBe(200);
    const client = createClient(Health, createGrpcTransport({ baseUrl: `http://127.0.0.1:${port}` }));
    expect((await client.check({})).status).toBe(Status.NOT_SERVING);
    dbUp = true;
    expect((await client.check({})).status).toBe(Status.SERVING);
  });

  it("streams health changes to Watch", async () => {
    const health = createHealthRegistry({ cacheMs: 0 });
    let ok = false;
    health.addCheck("snapshot", async () => (ok ? undefined : "no snapshot loaded yet"));
    server = createServer({ port: 0, host: "127.0.0.1", logger: createTestLogger(), health, services: [] });
    const port = await server.listen();
    const client = createClient(Health, createGrpcTransport({ baseUrl: `http://127.0.0.1:${port}` }));
    const seen: Status[] = [];
    const ac = new AbortController();
    setTimeout(() => (ok = true), 200);
    try {
      for await (const r of client.watch({}, { signal: ac.signal })) {
        seen.push(r.status);
        if (r.status === Status.SERVING) ac.abort();
      }
    } catch (err) {
      expect(ConnectError.from(err).code).toBe(Code.Canceled);
    }
    expect(seen).toEqual([Status.NOT_SERVING, Status.SERVING]);
  });

  it("applies a default deadline to unary calls without one, and honours the client's", async () => {
    server = slowServer(500, undefined, 100);
    const port = await server.listen();
    const client = createClient(AuthService, createGrpcTransport({ baseUrl: `http://127.0.0.1:${port}` }));
    await expect(client.whoAmI({})).rejects.toMatchObject({ code: Code.DeadlineExceeded });
    await expect(client.whoAmI({}, { timeoutMs: 50 })).rejects.toMatchObject({ code: Code.DeadlineExceeded });
  });

  it("aborts the handler's signal when the default deadline passes, so its work can stop", async () => {
    let aborted: unknown;
    server = createServer({
      port: 0,
      host: "127.0.0.1",
      logger: createTestLogger(),
      health: createHealthRegistry({ cacheMs: 0 }),
      defaultTimeoutMs: 100,
      services: [
        serve(AuthService, {
          async whoAmI(_req, ctx) {
            await new Promise((r) => ctx.signal.addEventListener("abort", r, { once: true }));
            aborted = ctx.signal.reason;
            return create(WhoAmIResponseSchema, {});
          },
          exchangeApiKey() {
            throw new ConnectError("unused", Code.Unimplemented);
          },
          exchangeOidcToken() {
            throw new ConnectError("unused", Code.Unimplemented);
          },
          getSignInOptions() {
            throw new ConnectError("unused", Code.Unimplemented);
          },
        }),
      ],
    });
    const port = await server.listen();
    const client = createClient(AuthService, createGrpcTransport({ baseUrl: `http://127.0.0.1:${port}` }));
    await expect(client.whoAmI({})).rejects.toMatchObject({ code: Code.DeadlineExceeded });
    expect(aborted).toMatchObject({ code: Code.DeadlineExceeded });
  });

  it("refuses request messages over the size limit with RESOURCE_EXHAUSTED", async () => {
    server = createServer({
      port: 0,
      host: "127.0.0.1",
      logger: createTestLogger(),
      health: createHealthRegistry({ cacheMs: 0 }),
      readMaxBytes: 1024,
      services: [],
    });
    const port = await server.listen();
    const res = await fetch(`http://127.0.0.1:${port}/grpc.health.v1.Health/Check`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ service: "x".repeat(2048) }),
    });
    expect(await res.json()).toMatchObject({ code: "resource_exhausted" });
  });

  it("says which setting to change when its port is taken", async () => {
    server = slowServer(0);
    const port = await server.listen();
    const second = createServer({
      port,
      host: "127.0.0.1",
      portSetting: "VANE_FLAGD_PORT",
      logger: createTestLogger(),
      health: createHealthRegistry(),
      services: [],
    });
    await expect(second.listen()).rejects.toThrow(`port ${port} is already in use on 127.0.0.1: stop what holds it, or choose another with VANE_FLAGD_PORT`);
  });

  it("answers unknown paths with 404 and a JSON body", async () => {
    server = slowServer(0);
    const port = await server.listen();
    const res = await fetch(`http://127.0.0.1:${port}/nope`);
    expect(res.status).toBe(404);
    expect(await res.json()).toMatchObject({ code: "not_found" });
  });
});
