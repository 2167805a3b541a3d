/**
 * The shape every service exposes to a process: its Connect services, plain HTTP routes,
 * readiness checks and lifecycle. A service's `main.ts` runs one; `npm start` runs them all on
 * one server. Nothing in a service knows which.
 */
import type { Interceptor } from "@connectrpc/connect";
import { createAuthInterceptor, type TokenVerifier } from "#lib/auth/auth.ts";
import type { CommonConfig } from "#lib/process/service-config.ts";
import { createHealthRegistry, type HealthCheck } from "#lib/server/health.ts";
import type { Logger } from "#lib/process/logger.ts";
import { createRpcMetricsInterceptor, createTracingInterceptor } from "#lib/server/rpc-telemetry.ts";
import { createServer, type HttpRoute, type ServiceRegistration, type VaneServer } from "#lib/server/server.ts";
import { getTelemetry } from "#lib/process/telemetry.ts";

/** What a service contributes to a process. */
export interface ServiceModule {
  name: string;
  services: ServiceRegistration[];
  /** Procedures callable without a token, as `/pkg.Service/Method`. */
  publicProcedures?: string[];
  httpRoutes?: Record<string, HttpRoute>;
  /** Plain HTTP handlers by path prefix, any method; they get the process's token verifier. */
  httpHandlers?: {
    prefix: string;
    handle: (req: Parameters<HttpRoute>[0], res: Parameters<HttpRoute>[1], env: { verifier: TokenVerifier }) => void | Promise<void>;
  }[];
  healthChecks?: Record<string, HealthCheck>;
  /** Releases the module's resources (pools, connections, timers). */
  stop(): Promise<void>;
}

/** Options for {@link startModules}. */
export interface StartModulesOptions {
  config: CommonConfig;
  logger: Logger;
  modules: ServiceModule[];
  verifier: TokenVerifier;
  /** Interceptors placed after auth, before validation. */
  interceptors?: Interceptor[];
}

/** A server running some modules. */
export interface RunningModules {
  server: VaneServer;
  port: number;
  /** Graceful stop: drain the server, then stop the modules in reverse order. */
  stop(): Promise<void>;
}

/** Serves the modules on one port with telemetry, auth, validation and health. */
export async function startModules(opts: StartModulesOptions): Promise<RunningModules> {
  const health = createHealthRegistry();
  for (const m of opts.modules) for (const [name, check] of Object.entries(m.healthChecks ?? {})) health.addCheck(`${m.name}.${name}`, check);
  const telemetry = getTelemetry();
  const server = createServer({
    port: opts.config.port,
    portSetting: "VANE_PORT (npm start: --port)",
    host: opts.config.host,
    logger: opts.logger,
    health,
    services: opts.modules.flatMap((m) => m.services),
    interceptors: [
      createTracingInterceptor(),
      createRpcMetricsInterceptor(),
      createAuthInterceptor({ verifier: opts.verifier, publicProcedures: opts.modules.flatMap((m) => m.publicProcedures ?? []) }),
      ...(opts.interceptors ?? []),
    ],
    corsOrigins: opts.config.corsOrigins,
    defaultTimeoutMs: opts.config.defaultTimeoutMs,
    drainDelayMs: opts.config.drainDelayMs,
    shutdownTimeoutMs: opts.config.shutdownTimeoutMs,
    httpRoutes: {
      ...(telemetry ? { "/metrics": (req, res) => telemetry.metricsHandler(req, res) } : {}),
      ...Object.assign({}, ...opts.modules.map((m) => m.httpRoutes ?? {})),
    },
    httpHandlers: opts.modules.flatMap((m) =>
      (m.httpHandlers ?? []).map((h) => ({ prefix: h.prefix, handle: ((req, res) => h.handle(req, res, { verifier: opts.verifier })) as HttpRoute })),
    ),
  });
  const port = await server.listen().catch(async (err: unknown) => {
    // Nothing will call stop() on a server that never listened: release the modules here.
    for (const m of [...opts.modules].reverse()) await m.stop().catch(() => undefined);
    throw err;
  });
  let stopping: Promise<void> | undefined;
  return {
    server,
    port,
    stop: () =>
      (stopping ??= (async () => {
        await server.close();
        for (const m of [...opts.modules].reverse()) {
          await m.stop().catch((err: unknown) => opts.logger.error({ err, module: m.name }, "stopping failed"));
        }
      })()),
  };
}
