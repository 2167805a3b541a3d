/**
 * Assembles the collector: the events stream, the EventService, and readiness on NATS.
 */
import { EventService } from "#gen/vane/events/v1/event_service_pb.js";
import { type Bus, ensureStream } from "#lib/bus/bus.ts";
import type { Logger } from "#lib/process/logger.ts";
import { serve } from "#lib/server/server.ts";
import type { ServiceModule } from "#lib/process/service-module.ts";
import { eventsStream, eventsSubjectPrefix } from "#lib/bus/streams.ts";
import { createEventService } from "./event-service.ts";
import { createRateLimiter } from "./rate-limit.ts";

/** Options for {@link createCollectorModule}. */
export interface CollectorModuleOptions {
  bus: Bus;
  /** The events stream (default VANE_EVENTS; tests use their own). */
  streamName?: string;
  rateLimit?: { perSecond: number; burst: number };
  /** Replicas for the stream when this process creates it. */
  replicas?: number;
  /** How long Track waits for JetStream's acknowledgement before answering UNAVAILABLE. */
  publishTimeoutMs?: number;
  logger: Logger;
}

/** Creates the collector module; the stream is ensured before it serves. */
export async function createCollectorModule(opts: CollectorModuleOptions): Promise<ServiceModule> {
  const spec = eventsStream(opts.streamName, opts.replicas);
  await ensureStream(opts.bus.jsm, { ...spec, manage: opts.bus.manageJetStream });
  const rate = opts.rateLimit ?? { perSecond: 2000, burst: 10_000 };
  return {
    name: "collector",
    services: [
      serve(
        EventService,
        createEventService({
          js: () => opts.bus.js,
          subjectPrefix: eventsSubjectPrefix(spec),
          streamName: spec.name,
          limiter: createRateLimiter(rate),
          publishTimeoutMs: opts.publishTimeoutMs,
        }),
      ),
    ],
    healthChecks: {
      nats: async () => (opts.bus.status() === "connected" ? undefined : `NATS is ${opts.bus.status()}`),
    },
    async stop() {
      /* the bus belongs to the process */
    },
  };
}
