/**
 * The server every service runs on: Connect, gRPC and gRPC-Web on one port, over HTTP/2
 * cleartext and HTTP/1.1; CORS; grpc.health.v1 and server reflection; protovalidate on every
 * request; a default deadline for unary calls; plain HTTP routes (metrics, JWKS, probes); and a
 * graceful shutdown that reports NOT_SERVING, keeps serving for the drain delay, stops
 * accepting, finishes in-flight calls and ends every kept-alive connection politely (HTTP/2
 * GOAWAY; HTTP/1.1 `Connection: close`, idle connections closed between requests).
 */
import type * as http from "node:http";
import type * as http2 from "node:http2";
import { setMaxListeners } from "node:events";
import type { AddressInfo } from "node:net";
import type { DescService } from "@bufbuild/protobuf";
import { Code, ConnectError, type ConnectRouter, type Interceptor, type ServiceImpl } from "@connectrpc/connect";
import type { UniversalHandlerOptions } from "@connectrpc/connect/protocol";
import { Health } from "#gen/grpc/health/v1/health_pb.js";
import * as reflectionV1 from "#gen/grpc/reflection/v1/reflection_pb.js";
import * as reflectionV1alpha from "#gen/grpc/reflection/v1alpha/reflection_pb.js";
import { compressionBrotli, compressionGzip } from "@connectrpc/connect-node";
import { createConnectAdapter } from "#lib/server/connect-adapter.ts";
import { createConnectFastPath, type FastConnectMethod } from "#lib/server/connect-fast-path.ts";
import { requestContextValues } from "#lib/server/client-address.ts";
import { applyCors } from "#lib/server/cors.ts";
import { createDualListener } from "#lib/server/dual-listener.ts";
import { createGrpcFastPath, type FastUnaryMethod } from "#lib/server/grpc-fast-path.ts";
import { createHealthService, type HealthRegistry } from "#lib/server/health.ts";
import type { Logger } from "#lib/process/logger.ts";
import { createReflectionServices } from "#lib/server/reflection.ts";
import { strictJsonTextDecoder } from "#lib/server/request-decoding.ts";
import { createErrorInterceptor } from "#lib/server/rpc-errors.ts";
import { createRuleAwareValidateInterceptor } from "#lib/server/validation.ts";

/** A plain HTTP handler mounted at an exact path (GET and HEAD). */
export type HttpRoute = (req: http.IncomingMessage | http2.Http2ServerRequest, res: http.ServerResponse | http2.Http2ServerResponse) => void | Promise<void>;

/** One Connect service and its implementation. */
export interface ServiceRegistration {
  service: DescService;
  // ServiceImpl is invariant in its service; the registration is checked where it is built.
  impl: Partial<ServiceImpl<any>>; // eslint-disable-line @typescript-eslint/no-explicit-any
  /** Handler options for this service only (e.g. JSON options of a wire-compatible protocol). */
  options?: Partial<UniversalHandlerOptions>;
  /**
   * Serve this service's unary and server-streaming methods over gRPC (HTTP/2, uncompressed
   * protobuf) through lib/server/grpc-fast-path.ts, and its unary methods over Connect (POST,
   * uncompressed requests) through lib/server/connect-fast-path.ts: same implementation and
   * interceptors, far less per-call overhead. For hot paths only (evaluation, watch).
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
  /** Plain HTTP routes by exact path, e.g. "/metrics" (GET and HEAD). */
  httpRoutes?: Record<string, HttpRoute>;
  /** Plain HTTP handlers by path prefix (whole segments), any method, e.g. OFREP under "/ofrep/v1". */
  httpHandlers?: { prefix: string; handle: HttpRoute }[];
  /**
   * Time between reporting NOT_SERVING and refusing new connections, serving as usual meanwhile,
   * so load balancers and probes notice (default 0 here; services read VANE_DRAIN_DELAY).
   */
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
  /** Set once the listener stops accepting: from then on, every connection is ended politely. */
  let draining = false;

  for (const s of opts.services) opts.health.addService(s.service.typeName);
  const reflection = createReflectionServices([...opts.services.map((s) => s.service), Health]);
  // JSON must be UTF-8: invalid bytes are refused, not replaced (lib/server/request-decoding.ts).
  // Connect's JSON codec reads `textDecoder` from these options; unknown fields are ignored, as
  // Connect does by default.
  const jsonOptions = { ignoreUnknownFields: true, textDecoder: strictJsonTextDecoder };
  const routes = (router: ConnectRouter) => {
    for (const s of opts.services) router.service(s.service, s.impl, s.options && { ...s.options, jsonOptions: { ...jsonOptions, ...s.options.jsonOptions } });
    router.service(Health, createHealthService(opts.health));
    router.service(reflectionV1.ServerReflection, reflection.v1);
    router.service(reflectionV1alpha.ServerReflection, reflection.v1alpha);
  };

  const defaultTimeoutMs = opts.defaultTimeoutMs ?? 30_000;
  const validate = createRuleAwareValidateInterceptor();
  // Inside telemetry and auth: spans and metrics record the code the caller gets.
  const errors = createErrorInterceptor(opts.logger);
  const interceptors = [...(opts.interceptors ?? []), errors, createDefaultDeadlineInterceptor(defaultTimeoutMs), validate];
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
  const fastPath =
    fastMethods.length > 0
      ? createGrpcFastPath({
          methods: fastMethods,
          // The fast path applies the default deadline itself, without an AbortSignal.any per call.
          interceptors: [...(opts.interceptors ?? []), errors, validate],
          logger: opts.logger,
          defaultTimeoutMs,
          shutdownSignal: shutdown.signal,
          maxTimeoutMs,
          readMaxBytes,
        })
      : undefined;

  // Connect unary calls of the same methods: lib/server/connect-fast-path.ts.
  const connectFast = opts.services.some((s) => s.fastUnary)
    ? createConnectFastPath({
        methods: opts.services
          .filter((s) => s.fastUnary)
          .flatMap((s) =>
            s.service.methods.flatMap((m): FastConnectMethod[] =>
              m.methodKind === "unary" && s.impl[m.localName]
                ? [
                    {
                      method: m as FastConnectMethod["method"],
                      impl: s.impl[m.localName] as FastConnectMethod["impl"],
                      compressMinBytes: s.options?.compressMinBytes,
                      jsonOptions: s.options?.jsonOptions,
                    },
                  ]
                : [],
            ),
          ),
        interceptors: [...(opts.interceptors ?? []), errors, validate],
        defaultTimeoutMs,
        shutdownSignal: shutdown.signal,
        maxTimeoutMs,
        readMaxBytes,
        jsonOptions,
        acceptCompression: [compressionGzip, compressionBrotli],
        contextValues: requestContextValues,
        logger: opts.logger,
      })
    : undefined;

  const handler = createConnectAdapter({
    routes,
    // The peer address, for limits by source (lib/server/client-address.ts).
    contextValues: requestContextValues,
    interceptors,
    maxTimeoutMs,
    readMaxBytes,
    jsonOptions,
    shutdownSignal: shutdown.signal,
    logger: opts.logger,
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

  const { tcp, h2, h1Connections } = createDualListener(
    (req, res) => {
      inFlight++;
      res.once("close", () => inFlight--);
      // While draining, HTTP/1.1 clients are told not to reuse the connection: Node closes it
      // after the response, and the client knows it.
      if (draining && req.httpVersionMajor === 1) res.setHeader("connection", "close");
      if (applyCors(opts.corsOrigins ?? [], req, res)) return;
      const path = (req.url ?? "/").split("?")[0];
      const route =
        ((req.method === "GET" || req.method === "HEAD") && httpRoutes[path]) ||
        opts.httpHandlers?.find((h) => path === h.prefix || path.startsWith(`${h.prefix}/`))?.handle;
      if (route) {
        Promise.resolve(route(req, res)).catch((err: unknown) => {
          log.error({ err, path }, "http route failed");
          if (!res.headersSent) res.writeHead(500);
          res.end();
        });
        return;
      }
      if (connectFast?.(req, res)) return;
      handler(req, res);
    },
    fastPath &&
      ((stream, headers) => {
        if (!fastPath(stream, headers, () => inFlight--)) return false;
        inFlight++;
        return true;
      }),
  );
  h2.on("session", (session) => {
    sessions.add(session);
    session.once("close", () => sessions.delete(session));
    // A connection accepted just before the listener closed.
    if (draining) session.close();
  });
  /**
   * Closes HTTP/1.1 connections that have been idle for IDLE_GRACE_MS (between requests: their
   * last response is complete) with a FIN; returns how many idle ones are left open. A client
   * that just received a response may be sending its next request on the connection: given the
   * grace, that request is answered (with Connection: close) instead of racing the close.
   */
  const closeIdle = (): number => {
    let left = 0;
    const now = performance.now();
    for (const [socket, c] of h1Connections) {
      if (c.response || socket.writableEnded) continue;
      if (now - c.idleSince >= IDLE_GRACE_MS) socket.end();
      else left++;
    }
    return left;
  };

  return {
    get port() {
      return boundPort;
    },
    listen() {
      return new Promise((resolve, reject) => {
        tcp.once("error", (err: NodeJS.ErrnoException) =>
          reject(
            err.code === "EADDRINUSE"
              ? new Error(
                  `port ${opts.port} is already in use on ${opts.host ?? "0.0.0.0"}: stop what holds it, or choose another with ${opts.portSetting ?? "VANE_PORT"}`,
                  { cause: err },
                )
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
        log.info({ inFlight, drainDelayMs: opts.drainDelayMs ?? 0 }, "shutting down: NOT_SERVING");
        // Serve as usual while load balancers and probes notice NOT_SERVING.
        if (opts.drainDelayMs) await sleep(opts.drainDelayMs);
        draining = true;
        log.info({ inFlight }, "shutting down: refusing new connections, finishing calls in flight");
        const stopped = new Promise<void>((resolve) => tcp.close(() => resolve()));
        // HTTP/1.1: responses not yet begun say Connection: close too; idle connections close
        // between requests (closeIdle). HTTP/2: GOAWAY naming the last stream processed, each
        // session closing once its streams end (a stream the client sent meanwhile is refused
        // with REFUSED_STREAM: unprocessed, safe to retry, which gRPC clients do by themselves).
        for (const c of h1Connections.values()) if (c.response && !c.response.headersSent) c.response.setHeader("connection", "close");
        for (const s of sessions) s.close();
        const deadline = performance.now() + (opts.shutdownTimeoutMs ?? 10_000);
        while (performance.now() < deadline && (closeIdle() > 0 || inFlight > 0 || sessions.size > 0)) await sleep(25);
        // Streams that are still open (watches) are told to end, then connections are cut.
        shutdown.abort(new ConnectError("the server is shutting down", Code.Unavailable));
        await sleep(inFlight > 0 ? 100 : 0);
        for (const s of sessions) s.destroy();
        for (const socket of h1Connections.keys()) socket.destroy();
        await stopped;
        log.info("stopped");
      })();
      return closing;
    },
  };
}

/** How long an HTTP/1.1 connection must have been idle before shutdown closes it. */
const IDLE_GRACE_MS = 250;
function sleep(ms: number) {
  return new Promise((r) => setTimeout(r, ms));
}
