/**
 * A graceful shutdown as real clients see it: keep-alive clients calling in a loop through the
 * whole shutdown (node:http with a keep-alive agent, a node:http2 session, @grpc/grpc-js) see
 * every call either completed or refused before it was processed — connection refused, a
 * session that said GOAWAY, or HTTP/2's REFUSED_STREAM (RFC 9113 §8.7: not processed, safe to
 * retry; grpc-js retries it by itself) — never a reset, a broken pipe or a hang-up; a call in
 * flight completes; health says NOT_SERVING first while calls are still served.
 */
import * as http from "node:http";
import * as http2 from "node:http2";
import { create } from "@bufbuild/protobuf";
import { Code, ConnectError } from "@connectrpc/connect";
import * as grpc from "@grpc/grpc-js";
import { afterEach, describe, expect, it } from "vitest";
import { AuthService, WhoAmIResponseSchema } from "#gen/vane/identity/v1/auth_service_pb.js";
import { createEnvReader } from "#lib/process/config.ts";
import { createHealthRegistry } from "#lib/server/health.ts";
import { readCommonConfig } from "#lib/process/service-config.ts";
import { createServer, serve, type VaneServer } from "#lib/server/server.ts";
import { createTestLogger, eventually } from "#test/support/harness.ts";

const CHECK = "/grpc.health.v1.Health/Check";

/** What a looping client saw. */
interface Tally {
  served: number;
  notServing: number;
  refused: number;
  /** HTTP/2 streams refused unprocessed (REFUSED_STREAM) and sent again. */
  retried: number;
  failures: string[];
}
const tally = (): Tally => ({ served: 0, notServing: 0, refused: 0, retried: 0, failures: [] });

function startServer(drainDelayMs: number, slowMs = 0): VaneServer {
  return createServer({
    port: 0,
    host: "127.0.0.1",
    logger: createTestLogger(),
    health: createHealthRegistry({ cacheMs: 0 }),
    drainDelayMs,
    shutdownTimeoutMs: 5_000,
    services: [
      serve(AuthService, {
        async whoAmI() {
          await new Promise((r) => setTimeout(r, slowMs));
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

/** Connect JSON health checks over HTTP/1.1 with a keep-alive agent, until refused. */
async function http1Loop(port: number, t: Tally, stop: () => boolean): Promise<void> {
  const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
  try {
    for (let i = 0; i < 100_000 && !stop(); i++) {
      const outcome = await new Promise<string>((resolve) => {
        const req = http.request({ host: "127.0.0.1", port, path: CHECK, method: "POST", agent, headers: { "content-type": "application/json" } }, (res) => {
          let body = "";
          res.setEncoding("utf8").on("data", (c: string) => (body += c));
          res.on("end", () => resolve(res.statusCode === 200 ? (JSON.parse(body) as { status: string }).status : `HTTP ${res.statusCode}`));
          res.on("error", (err: NodeJS.ErrnoException) => resolve(`response ${err.code ?? err.message}`));
        });
        req.on("error", (err: NodeJS.ErrnoException) => resolve(err.code === "ECONNREFUSED" ? "refused" : `request ${err.code ?? err.message}`));
        req.end("{}");
      });
      if (!record(t, outcome)) return;
    }
  } finally {
    agent.destroy();
  }
}

/**
 * The same over HTTP/2, one session at a time. As RFC 9113 (§6.8) requires, a session that
 * received GOAWAY opens no new stream (Node's client leaves that to its user): the next call
 * takes a new connection.
 */
async function http2Loop(port: number, t: Tally, stop: () => boolean): Promise<void> {
  let session: http2.ClientHttp2Session | undefined;
  let sessionError: string | undefined;
  const goneAway = new WeakSet<http2.ClientHttp2Session>();
  const connect = () =>
    new Promise<http2.ClientHttp2Session | undefined>((resolve) => {
      const s = http2.connect(`http://127.0.0.1:${port}`);
      s.on("goaway", () => goneAway.add(s));
      s.once("connect", () => resolve(s));
      s.on("error", (err: NodeJS.ErrnoException) => {
        if (err.code === "ECONNREFUSED") resolve(undefined);
        else sessionError = err.code ?? err.message;
      });
    });
  try {
    for (let i = 0; i < 100_000 && !stop(); i++) {
      if (sessionError) return void t.failures.push(`session ${sessionError}`);
      if (!session || session.closed || session.destroyed || goneAway.has(session)) {
        session?.close();
        session = await connect();
        if (!session) return void t.refused++;
      }
      let stream: http2.ClientHttp2Stream;
      try {
        stream = session.request({ ":method": "POST", ":path": CHECK, "content-type": "application/json" });
      } catch (err) {
        // A session that received GOAWAY takes no new stream: nothing was sent; use a new one.
        if ((err as NodeJS.ErrnoException).code === "ERR_HTTP2_GOAWAY_SESSION" || (err as NodeJS.ErrnoException).code === "ERR_HTTP2_INVALID_SESSION") {
          session = undefined;
          continue;
        }
        throw err;
      }
      const outcome = await new Promise<string>((resolve) => {
        let body = "";
        let status = 0;
        stream.on("close", () => {
          // Refused before any processing: safe to retry, on a new connection.
          if (stream.rstCode === http2.constants.NGHTTP2_REFUSED_STREAM) resolve("retry");
        });
        stream.on("response", (h) => (status = Number(h[":status"])));
        stream.setEncoding("utf8").on("data", (c: string) => (body += c));
        stream.on("end", () => resolve(status === 200 ? (JSON.parse(body) as { status: string }).status : `HTTP ${status}`));
        stream.on("error", (err: NodeJS.ErrnoException) => {
          if (stream.rstCode !== http2.constants.NGHTTP2_REFUSED_STREAM) resolve(`stream ${err.code ?? ""} ${err.message}`);
        });
        stream.end("{}");
      });
      if (outcome === "retry") {
        t.retried++;
        session = undefined;
        continue;
      }
      if (!record(t, outcome)) return;
    }
  } finally {
    session?.destroy();
  }
}

/** Health checks through grpc-js (an empty HealthCheckRequest is zero bytes), until refused. */
async function grpcLoop(port: number, t: Tally, stop: () => boolean): Promise<void> {
  const client = new grpc.Client(`127.0.0.1:${port}`, grpc.credentials.createInsecure());
  const raw = (b: Buffer) => b;
  try {
    for (let i = 0; i < 100_000 && !stop(); i++) {
      const outcome = await new Promise<string>((resolve) => {
        client.makeUnaryRequest(CHECK, raw, raw, Buffer.alloc(0), { deadline: Date.now() + 10_000 }, (err, res) => {
          if (!err) return resolve(res!.length === 0 ? "UNKNOWN" : res![1] === 1 ? "SERVING" : "NOT_SERVING");
          // grpc-js says UNAVAILABLE for a connection it could not make: the call was never sent.
          if (err.code === grpc.status.UNAVAILABLE && /ECONNREFUSED|No connection established/.test(err.details)) return resolve("refused");
          resolve(`grpc ${grpc.status[err.code]}: ${err.details}`);
        });
      });
      if (!record(t, outcome)) return;
    }
  } finally {
    client.close();
  }
}

/** Counts an outcome; false once the client was refused (the loop ends). */
function record(t: Tally, outcome: string): boolean {
  if (outcome === "SERVING") t.served++;
  else if (outcome === "NOT_SERVING") t.notServing++;
  else if (outcome === "refused") t.refused++;
  else t.failures.push(outcome);
  return outcome !== "refused" && t.failures.length < 5;
}

describe("graceful shutdown", () => {
  let server: VaneServer | undefined;
  afterEach(async () => {
    await server?.close();
    server = undefined;
  });

  it.each([0, 300])(
    "looping keep-alive clients (HTTP/1.1, HTTP/2, gRPC) see only completed or refused calls (drain delay %i ms)",
    async (drainDelayMs) => {
      server = startServer(drainDelayMs, 400);
      const port = await server.listen();
      const clients = { http1: tally(), http2: tally(), grpc: tally() };
      let closed = false;
      // Bounded: after the server stopped, each loop ends at its first refused call.
      const loops = Promise.all([
        http1Loop(port, clients.http1, () => false),
        http2Loop(port, clients.http2, () => false),
        grpcLoop(port, clients.grpc, () => false),
      ]);
      await eventually(() => Object.values(clients).every((t) => t.served >= 20), 20_000, "every client being served");
      // A slow call in flight when the shutdown begins completes.
      const slow = fetch(`http://127.0.0.1:${port}/vane.identity.v1.AuthService/WhoAmI`, {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: "{}",
      });
      await new Promise((r) => setTimeout(r, 50));
      const closing = server.close().then(() => (closed = true));
      await loops;
      await closing;
      expect((await slow).status).toBe(200);
      expect(closed).toBe(true);
      for (const [name, t] of Object.entries(clients)) {
        expect({ name, failures: t.failures }).toEqual({ name, failures: [] });
        expect(t.refused).toBe(1);
        if (drainDelayMs > 0) expect(t.notServing, name).toBeGreaterThan(0);
      }
    },
    60_000,
  );

  it("is graceful by default: a service keeps answering, NOT_SERVING, for VANE_DRAIN_DELAY (5 s) before refusing connections", () => {
    expect(readCommonConfig(createEnvReader({})).drainDelayMs).toBe(5_000);
  });

  it("an idle keep-alive connection is closed between requests, and its client simply reconnects", async () => {
    server = startServer(0);
    const port = await server.listen();
    const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
    const get = () =>
      new Promise<number>((resolve, reject) => {
        http.get({ host: "127.0.0.1", port, path: "/healthz", agent }, (res) => res.resume().on("end", () => resolve(res.statusCode!))).on("error", reject);
      });
    expect(await get()).toBe(200);
    const [socket] = Object.values(agent.freeSockets).flat();
    const ended = new Promise<string>((resolve) => {
      socket!.once("end", () => resolve("end"));
      socket!.once("error", (err: NodeJS.ErrnoException) => resolve(err.code ?? "error"));
    });
    await server.close();
    server = undefined;
    // A clean end (FIN), not a reset.
    expect(await ended).toBe("end");
    agent.destroy();
  });
});
