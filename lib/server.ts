/**
 * The server every service runs on: Connect, gRPC and gRPC-Web on one port, over HTTP/2
 * cleartext and HTTP/1.1; CORS; grpc.health.v1 and server reflection; protovalidate on every
 * request; a default deadline for unary calls; plain HTTP routes (metrics, JWKS, probes); and a
 * graceful shutdown that reports NOT_SERVING, stops accepting, drains in-flight calls, then
 * closes kept-alive HTTP/2 sessions.
 */
import type * as http from "node:http";
import type * as http2 from "node:http2";
import { setMaxListeners } from "node:events";
import type { AddressInfo } from "node:net";
import type { DescService } from "@bufbuild/protobuf";
import { Code, ConnectError, type ConnectRouter, type Interceptor, type ServiceImpl } from "@connectrpc/connect";
import type { UniversalHandlerOptions } from "@connectrpc/connect/protocol";
import { connectNodeAdapter } from "@connectrpc/connect-node";
import { Health } from "#gen/grpc/health/v1/health_pb.js";
import * as reflectionV1 from "#gen/grpc/reflection/v1/reflection_pb.js";
import * as reflectionV1alpha from "#gen/grpc/reflection/v1alpha/reflection_pb.js";
import { requestContextValues } from "#lib/client-address.ts";
import { applyCors } from "#lib/cors.ts";
import { createDualListener } from "#lib/dual-listener.ts";
import { createGrpcFastPath, type FastUnaryMethod } from "#lib/grpc-fast-path.ts";
import { createHealthService, type HealthRegistry } from "#lib/health.ts";
import type { Logger } from "#lib/logger.ts";
import { createReflectionServices } from "#lib/reflection.ts";
import { createRuleAwareValidateInterceptor } from "#lib/validation.ts";

/** A plain HTTP handler mounted at an exact path (GET and HEAD). */
export type HttpRoute = (
  req: http.IncomingMessage | http2.Http2ServerRequest,
  res: http.ServerResponse | http2.Http2ServerResponse,
) => void | Promise<void>;

/** One Connect service and its implementation. */
export interface ServiceRegistration {
  service: DescService;
  // ServiceImpl is invariant in its service; the registration is checked where it is built.
  impl: Partial<ServiceImpl<any>>; // eslint-disable-line @typescript-eslint/no-explicit-any
  /** Handler options for this service only (e.g. JSON options of a wire-compatible protocol). */
  options?: Partial<UniversalHandlerOptions>;
  /**
   * Serve this service's unary and server-streaming methods over gRPC (HTTP/2, uncompressed
   * protobuf) through lib/grpc-fast-path.ts: same implementation and interceptors, far less
   * per-call overhead. For hot paths only (evaluation, watch).
   */
  fastUnary?: boolean;
}

/** Builds a registration with the implementation checked against the service. */
export function serve<S extends DescService>(service: S, impl: ServiceImpl<S>): ServiceRegistration {
  return { service, impl };
}

/** Options for {@link createServer}. */
export interface ServerOptions {
  port: number;
  /** The setting that chooses the port, named when the port is taken (default VANE_PORT). */
  portSetting?: string;
  host?: string;
  logger: Logger;
  services: ServiceRegistration[];
  health: HealthRegistry;
  /** Applied outermost first, before validation (telemetry, then auth). */
  interceptors?: Interceptor[];
  /** Allowed browser origins; "*" for any. */
  corsOrigins?: readonly string[];
  /** Deadline for unary calls whose client set none. */
  defaultTimeoutMs?: number;
  /** Longest deadline a client may ask for. */
  maxTimeoutMs?: number;
  /** Largest request message accepted, in bytes (default 4 MiB): bigger ones are RESOURCE_EXHAUSTED. */
  readMaxBytes?: number;
  /** Plain HTTP routes by exact path, e.g. "/metrics". */
  httpRoutes?: Record<string, HttpRoute>;
  /** Time between reporting NOT_SERVING and refusing new connections (lets load balancers notice). */
  drainDelayMs?: number;
  /** Longest time to wait for in-flight calls before closing connections. */
  shutdownTimeoutMs?: number;
}

/** A running server. */
export interface VaneServer {
  /** Starts listening; resolves with the bound port (useful with port 0). */
  listen(): Promise<number>;
  /** Graceful shutdown; idempotent. */
  close(): Promise<void>;
  readonly port: number;
}

/**
 * Gives unary calls whose client set no deadline the default one: the handler's `ctx.signal`
 * aborts when it passes (so work in progress can stop, and a write does not commit after the
 * caller was told it failed) and the caller gets DEADLINE_EXCEEDED.
 */
function createDefaultDeadlineInterceptor(ms: number): Interceptor {
  return (next) => async (req) => {
    if (req.stream || req.header.has("grpc-timeout") || req.header.has("connect-timeout-ms")) return next(req);
    const deadline = new AbortController();
    const timer = setTimeout(() => deadline.abort(new ConnectError(`the call took longer than ${ms} ms`, Code.DeadlineExceeded)), ms);
    const expired = new Promise<never>((_, reject) => deadline.signal.addEventListener("abort", () => reject(deadline.signal.reason), { once: true }));
    try {
      return await Promise.race([next({ ...req, signal: AbortSignal.any([req.signal, deadline.signal]) }), expired]);
    } finally {
      clearTimeout(timer);
    }
  };
}

/** Creates the server; call `listen()` to start it. */
export function createServer(opts: ServerOptions): VaneServer {
  const log = opts.logger.child({ component: "server" });
  const shutdown = new AbortController();
  // Every call in flight listens to it: many listeners are expected, not a leak.
  setMaxListeners(0, shutdown.signal);
  const sessions = new Set<http2.ServerHttp2Session>();
  let inFlight = 0;
  let boundPort = opts.port;
  let closing: Promise<void> | undefined;

  for (const s of opts.services) opts.health.addService(s.service.typeName);
  const reflection = createReflectionServices([...opts.services.map((s) => s.service), Health]);
  const routes = (router: ConnectRouter) => {
    for (const s of opts.services) router.service(s.service, s.impl, s.options);
    router.service(Health, createHealthService(opts.health));
    router.service(reflectionV1.ServerReflection, reflection.v1);
    router.service(reflectionV1alpha.ServerReflection, reflection.v1alpha);
  };

  const defaultTimeoutMs = opts.defaultTimeoutMs ?? 30_000;
  const validate = createRuleAwareValidateInterceptor();
  const interceptors = [...(opts.interceptors ?? []), createDefaultDeadlineInterceptor(defaultTimeoutMs), validate];
  const maxTimeoutMs = opts.maxTimeoutMs ?? 5 * 60_000;
  const readMaxBytes = opts.readMaxBytes ?? 4 * 1024 * 1024;
  const fastMethods: FastUnaryMethod[] = opts.services
    .filter((s) => s.fastUnary)
    .flatMap((s) =>
      s.service.methods.flatMap((m): FastUnaryMethod[] =>
        (m.methodKind === "unary" || m.methodKind === "server_streaming") && s.impl[m.localName]
          ? [{ method: m as FastUnaryMethod["method"], impl: s.impl[m.localName] as FastUnaryMethod["impl"] }]
          : [],
      ),
    );
  const fastPath = fastMethods.length > 0 ? createGrpcFastPath({
          methods: fastMethods,
          // The fast path applies the default deadline itself, without an AbortSignal.any per call.
          interceptors: [...(opts.interceptors ?? []), validate],
          defaultTimeoutMs,
          shutdownSignal: shutdown.signal,
          maxTimeoutMs,
          readMaxBytes,
        }) : undefined;

  const handler = connectNodeAdapter({
    routes,
    // The peer address, for limits by source (lib/client-address.ts).
    contextValues: requestContextValues,
    interceptors,
    maxTimeoutMs,
    readMaxBytes,
    shutdownSignal: shutdown.signal,
    fallback(req, res) {
      res.writeHead(404, { "content-type": "application/json" });
      res.end(JSON.stringify({ code: "not_found", message: `no route for ${req.method} ${req.url}` }));
    },
  });

  const httpRoutes: Record<string, HttpRoute> = {
    "/healthz": (_req, res) => {
      res.writeHead(200, { "content-type": "text/plain" });
      res.end("ok\n");
    },
    "/readyz": async (_req, res) => {
      const r = await opts.health.readiness();
      res.writeHead(r.ready ? 200 : 503, { "content-type": "application/json" });
      res.end(JSON.stringify(r));
    },
    ...opts.httpRoutes,
  };

  const { tcp, h2, h1Sockets, h1Busy } = createDualListener((req, res) => {
    inFlight++;
    res.once("close", () => inFlight--);
    // While draining, HTTP/1.1 clients are told not to reuse the connection.
    if (closing && req.httpVersionMajor === 1) res.setHeader("connection", "close");
    if (applyCors(opts.corsOrigins ?? [], req, res)) return;
    const path = (req.url ?? "/").split("?")[0];
    const route = (req.method === "GET" || req.method === "HEAD") && httpRoutes[path];
    if (route) {
      Promise.resolve(route(req, res)).catch((err: unknown) => {
        log.error({ err, path }, "http route failed");
        if (!res.headersSent) res.writeHead(500);
        res.end();
      });
      return;
    }
    handler(req, res);
  }, fastPath && ((stream, headers) => {
    if (!fastPath(stream, headers, () => inFlight--)) return false;
    inFlight++;
    return true;
  }));
  h2.on("session", (session) => {
    sessions.add(session);
    session.once("close", () => sessions.delete(session));
  });

  return {
    get port() {
      return boundPort;
    },
    listen() {
      return new Promise((resolve, reject) => {
        tcp.once("error", (err: NodeJS.ErrnoException) =>
          reject(
            err.code === "EADDRINUSE"
              ? new Error(`port ${opts.port} is already in use on ${opts.host ?? "0.0.0.0"}: stop what holds it, or choose another with ${opts.portSetting ?? "VANE_PORT"}`, { cause: err })
              : err,
          ),
        );
        tcp.listen(opts.port, opts.host ?? "0.0.0.0", () => {
          tcp.removeAllListeners("error");
          boundPort = (tcp.address() as AddressInfo).port;
          log.info({ port: boundPort, services: opts.services.map((s) => s.service.typeName) }, "listening");
          resolve(boundPort);
        });
      });
    },
    close() {
      closing ??= (async () => {
        opts.health.shutdown();
        log.info({ inFlight }, "shutting down: NOT_SERVING");
        if (opts.drainDelayMs) await sleep(opts.drainDelayMs);
        const stopped = new Promise<void>((resolve) => tcp.close(() => resolve()));
        // Ask HTTP/2 clients to go away once their open streams finish (GOAWAY); HTTP/1.1
        // keep-alive connections close when idle.
        for (const s of sessions) s.close();
        const closeIdle = () => {
          for (const socket of h1Sockets) if (!h1Busy.has(socket)) socket.destroy();
        };
        closeIdle();
        const deadline = Date.now() + (opts.shutdownTimeoutMs ?? 10_000);
        while (inFlight > 0 && Date.now() < deadline) {
          await sleep(25);
          closeIdle();
        }
        // Streams that are still open (watches) are told to end, then connections are cut.
        shutdown.abort(new ConnectError("the server is shutting down", Code.Unavailable));
        await sleep(inFlight > 0 ? 100 : 0);
        for (const s of sessions) s.destroy();
        for (const socket of h1Sockets) socket.destroy();
        await stopped;
        log.info("stopped");
      })();
      return closing;
    },
  };
}

function sleep(ms: number) {
  return new Promise((r) => setTimeout(r, ms));
}
