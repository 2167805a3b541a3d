/**
 * Health that tells the truth: readiness is the conjunction of named checks (database
 * reachable, NATS connected, snapshot loaded…), evaluated on demand with a short cache, and
 * everything reports NOT_SERVING once shutdown begins. Served as grpc.health.v1 and as
 * `/healthz` (liveness) and `/readyz` (readiness) for HTTP probes.
 */
import { create } from "@bufbuild/protobuf";
import { Code, ConnectError, type ServiceImpl } from "@connectrpc/connect";
import { Health, HealthCheckResponse_ServingStatus as Status, HealthCheckResponseSchema, HealthListResponseSchema } from "#gen/grpc/health/v1/health_pb.js";

/** A readiness check: resolves when healthy; throws (or resolves a reason string) when not. */
export type HealthCheck = (signal: AbortSignal) => Promise<void | string>;

/** Result of evaluating all checks. */
export interface Readiness {
  ready: boolean;
  /** Failing check names mapped to the reason. */
  failing: Record<string, string>;
}

/** The process's health registry. */
export interface HealthRegistry {
  /** Adds a named readiness check. */
  addCheck(name: string, check: HealthCheck): void;
  /** Declares a served service name (answered by Check/Watch). */
  addService(name: string): void;
  /** Evaluates the checks (cached for `cacheMs`). */
  readiness(): Promise<Readiness>;
  /** Flips everything to NOT_SERVING for good: shutdown has begun. */
  shutdown(): void;
  readonly shuttingDown: boolean;
  /** Every declared service name; "" is the server as a whole. */
  readonly services: ReadonlySet<string>;
}

/** Creates a health registry. */
export function createHealthRegistry(opts: { cacheMs?: number; checkTimeoutMs?: number } = {}): HealthRegistry {
  const cacheMs = opts.cacheMs ?? 1000;
  const checkTimeoutMs = opts.checkTimeoutMs ?? 2000;
  const checks = new Map<string, HealthCheck>();
  const services = new Set<string>([""]);
  let last: { at: number; value: Promise<Readiness> } | undefined;
  let shuttingDown = false;

  async function evaluate(): Promise<Readiness> {
    const failing: Record<string, string> = {};
    if (shuttingDown) failing.shutdown = "the server is shutting down";
    await Promise.all(
      [...checks].map(async ([name, check]) => {
        try {
          const reason = await check(AbortSignal.timeout(checkTimeoutMs));
          if (typeof reason === "string") failing[name] = reason;
        } catch (err) {
          failing[name] = err instanceof Error ? err.message : String(err);
        }
      }),
    );
    return { ready: Object.keys(failing).length === 0, failing };
  }

  return {
    addCheck(name, check) {
      checks.set(name, check);
      last = undefined;
    },
    addService(name) {
      services.add(name);
    },
    readiness() {
      const now = Date.now();
      if (!last || now - last.at > cacheMs || shuttingDown) last = { at: now, value: evaluate() };
      return last.value;
    },
    shutdown() {
      shuttingDown = true;
      last = undefined;
    },
    get shuttingDown() {
      return shuttingDown;
    },
    services,
  };
}

/** The grpc.health.v1.Health implementation over a registry. */
export function createHealthService(registry: HealthRegistry, watchIntervalMs = 1000): ServiceImpl<typeof Health> {
  const statusOf = async (service: string) => {
    if (!registry.services.has(service)) return undefined;
    const r = await registry.readiness();
    return r.ready ? Status.SERVING : Status.NOT_SERVING;
  };
  return {
    async check(req) {
      const status = await statusOf(req.service);
      if (status === undefined) throw new ConnectError(`unknown service "${req.service}"`, Code.NotFound);
      return create(HealthCheckResponseSchema, { status });
    },
    async list() {
      const r = await registry.readiness();
      const status = r.ready ? Status.SERVING : Status.NOT_SERVING;
      const statuses: Record<string, ReturnType<typeof create<typeof HealthCheckResponseSchema>>> = {};
      for (const s of registry.services) statuses[s] = create(HealthCheckResponseSchema, { status });
      return create(HealthListResponseSchema, { statuses });
    },
    async *watch(req, ctx) {
      let previous: Status | undefined;
      while (!ctx.signal.aborted) {
        const status = (await statusOf(req.service)) ?? Status.SERVICE_UNKNOWN;
        if (status !== previous) {
          previous = status;
          yield create(HealthCheckResponseSchema, { status });
        }
        if (registry.shuttingDown) return;
        await new Promise((resolve) => {
          const t = setTimeout(resolve, watchIntervalMs);
          ctx.signal.addEventListener("abort", () => (clearTimeout(t), resolve(undefined)), { once: true });
        });
      }
    },
  };
}
