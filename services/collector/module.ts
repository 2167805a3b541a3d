/**
 * Assembles the collector: the events stream, the EventService, and readiness on NATS.
 */
import { EventService } from "#gen/vane/events/v1/event_service_pb.js";
import { type Bus, ensureStream } from "#lib/bus/bus.ts";
import type { Logger } from "#lib/process/logger.ts";
import { serve } from "#lib/server/server.ts";
import type { ServiceModule } from "#lib/process/service-module.ts";
import { eventsLayout } from "#lib/bus/partitions.ts";
import { createPublishWindow } from "#lib/bus/publish-window.ts";
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
  /** `VANE_EVENTS_PARTITIONS` (default 1). */
  partitions?: number;
  /** Acknowledgements outstanding at most, across calls (default 10 000). */
  maxInFlight?: number;
  /** How long Track waits for JetStream's acknowledgement before answering UNAVAILABLE. */
  publishTimeoutMs?: number;
  logger: Logger;
}

/** Creates the collector module; the stream is ensured before it serves. */
export async function createCollectorModule(opts: CollectorModuleOptions): Promise<ServiceModule> {
  const layout = eventsLayout(opts.streamName, opts.partitions, opts.replicas);
  for (const spec of [layout.legacy, ...layout.partitionStreams]) await ensureStream(opts.bus.jsm, { ...spec, manage: opts.bus.manageJetStream });
  const rate = opts.rateLimit ?? { perSecond: 2000, burst: 10_000 };
  return {
    name: "collector",
    services: [
      serve(
        EventService,
        createEventService({
          js: () => opts.bus.js,
          layout,
          limiter: createRateLimiter(rate),
          window: createPublishWindow(opts.maxInFlight ?? 10_000),
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
