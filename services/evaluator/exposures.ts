/**
 * Exposure events: when a flag of a running experiment is evaluated for a unit, a
 * vane.events.v1.EventEnvelope carrying an Exposure goes to the JetStream stream VANE_EVENTS
 * (subject `vane.events.<environment id>.exposure`, the collector's format, which analytics
 * consumes). Recording is synchronous, constant
 * time and never throws, so it can neither slow nor fail an evaluation; publishing happens in
 * batches in the background. A buffer bounded in exposures and in bytes rides out a NATS outage;
 * when it is full, new exposures are dropped and counted. An exposure that can never be published
 * (larger than the server's max_payload, or refused again and again while others go through) is
 * dropped and counted as undeliverable, never retried at the head of the buffer forever.
 *
 * Aggregated before publishing: of the exposures of one environment, experiment, flag, unit and
 * variant, only the first is kept while that combination is among the last `dedupeSize` (50,000)
 * remembered. Analytics assigns a unit at its first exposure and counts an exposure to another
 * variant as a conflict, so the repeats it drops change nothing there except that a unit flipping
 * between variants is counted once per variant, not once per flip. Each round publishes up to
 * `batchSize` exposures with all their acknowledgements in flight at once (the bound), each to its
 * unit's partition stream (lib/bus/partitions.ts).
 */
import { randomUUID } from "node:crypto";
import { create, toBinary } from "@bufbuild/protobuf";
import { timestampFromMs } from "@bufbuild/protobuf/wkt";
import type { JetStreamClient, JetStreamManager } from "@nats-io/jetstream";
import { context, ROOT_CONTEXT, type SpanContext, trace } from "@opentelemetry/api";
import { EventEnvelopeSchema } from "#gen/vane/events/v1/events_pb.js";
import { ensureStream, publishEvent, type BusStatus } from "#lib/bus/bus.ts";
import type { Logger } from "#lib/process/logger.ts";
import { eventsLayout } from "#lib/bus/partitions.ts";

/** One exposure, as the evaluation path reports it. */
export interface Exposure {
  organizationId: string;
  projectId: string;
  environmentId: string;
  flagKey: string;
  variant: string;
  experimentId: string;
  unitKey: string;
  /** The unit's values of the experiment's breakdown dimensions (exposure-dimensions.ts). */
  dimensions?: Record<string, string>;
}

/** What the publisher needs from the bus. */
export interface ExposureBus {
  js: JetStreamClient;
  jsm: JetStreamManager;
  status(): BusStatus;
  /** The server's max_payload, once connected. */
  maxPayload?(): number | undefined;
  /** false: the events stream is managed externally (NACK); only verify it. */
  manageJetStream?: boolean;
}

/** Counters, for metrics and tests. */
export interface ExposureStats {
  buffered: number;
  bufferedBytes: number;
  published: number;
  /** Dropped because the buffer was full. */
  dropped: number;
  /** Dropped because they could never be published. */
  undeliverable: number;
  failed: number;
  suppressed: number;
}

/** Options for {@link createExposurePublisher}. */
export interface ExposurePublisherOptions {
  logger: Logger;
  /** The events stream (lib/bus/streams.ts's spec, ensured like the collector does). */
  stream: string;
  /** `VANE_EVENTS_PARTITIONS` (default 1). */
  partitions?: number;
  /** Most exposures held while they cannot be published (default 10 000). */
  capacity?: number;
  /** Most bytes of encoded exposures held (default 16 MiB). */
  capacityBytes?: number;
  /** Failed publishes of one exposure, while others of its batch succeed, before it is dropped as undeliverable (default 5). */
  maxAttempts?: number;
  /** Most exposures published per round (default 500). */
  batchSize?: number;
  /** Pause between rounds (default 100 ms). */
  flushIntervalMs?: number;
  /** Wait for each acknowledgement (default 5 s). */
  publishTimeoutMs?: number;
  /** Recent exposures remembered to suppress repeats (default 50 000; 0 disables). */
  dedupeSize?: number;
  now?: () => number;
}

/** The publisher. */
export interface ExposurePublisher {
  /** Queues an exposure; never throws, never waits. */
  record(e: Exposure): void;
  /** Starts publishing through `bus` (call once connected). */
  attach(bus: ExposureBus): void;
  /** Publishes what is buffered now (one pass); resolves when done. */
  flush(): Promise<void>;
  stats(): ExposureStats;
  /** Stops the background loop after a last flush attempt bounded by `timeoutMs`. */
  stop(timeoutMs?: number): Promise<void>;
}

interface Pending {
  id: string;
  subject: string;
  payload: Uint8Array;
  attempts: number;
  /** The evaluation's span, so the exposure's PRODUCER span joins its trace (only the ids are kept). */
  parent: SpanContext | undefined;
}

/** Without the server's word: NATS's default max_payload. */
const DEFAULT_MAX_PAYLOAD = 1 << 20;
/** Room for the publish's headers (message id) under max_payload. */
const HEADER_ROOM = 1024;

/** Creates the publisher; it buffers until {@link ExposurePublisher.attach}. */
export function createExposurePublisher(opts: ExposurePublisherOptions): ExposurePublisher {
  const log = opts.logger.child({ component: "exposures" });
  const capacity = opts.capacity ?? 10_000;
  const capacityBytes = opts.capacityBytes ?? 16 << 20;
  const maxAttempts = opts.maxAttempts ?? 5;
  const batchSize = opts.batchSize ?? 500;
  const dedupeSize = opts.dedupeSize ?? 50_000;
  const now = opts.now ?? Date.now;
  // A ring buffer: O(1) enqueue and dequeue, fixed memory.
  const ring: (Pending | undefined)[] = new Array(capacity);
  let head = 0;
  let count = 0;
  let bytes = 0;
  const recent = new Set<string>();
  const stats = { published: 0, dropped: 0, undeliverable: 0, failed: 0, suppressed: 0 };
  // Taken from the ring and not yet answered by JetStream: still held, so still counted as buffered
  // (otherwise the counts briefly lose them while a round is in flight).
  let inFlight = 0;
  let bus: ExposureBus | undefined;
  let streamReady = false;
  let timer: NodeJS.Timeout | undefined;
  let flushing: Promise<void> | undefined;
  let stopped = false;
  let lastWarn = 0;

  const push = (p: Pending) => {
    ring[(head + count) % capacity] = p;
    count++;
    bytes += p.payload.length;
  };
  const unshiftAll = (items: Pending[]) => {
    // Failed items go back to the front, in order, as far as room allows.
    for (let i = items.length - 1; i >= 0; i--) {
      if (count === capacity || bytes + items[i].payload.length > capacityBytes) {
        stats.dropped += i + 1;
        break;
      }
      head = (head - 1 + capacity) % capacity;
      ring[head] = items[i];
      count++;
      bytes += items[i].payload.length;
    }
  };
  const take = (n: number): Pending[] => {
    const out: Pending[] = [];
    while (out.length < n && count > 0) {
      const p = ring[head]!;
      out.push(p);
      ring[head] = undefined;
      head = (head + 1) % capacity;
      count--;
      bytes -= p.payload.length;
    }
    return out;
  };
  const maxMessageBytes = () => (bus?.maxPayload?.() ?? DEFAULT_MAX_PAYLOAD) - HEADER_ROOM;

  const layout = eventsLayout(opts.stream, opts.partitions);
  const ensure = async (b: ExposureBus) => {
    for (const spec of [layout.legacy, ...layout.partitionStreams]) await ensureStream(b.jsm, { ...spec, manage: b.manageJetStream });
    streamReady = true;
  };

  const publishRound = async () => {
    const b = bus;
    if (!b || count === 0 || b.status() !== "connected") return;
    if (!streamReady) await ensure(b);
    while (count > 0 && b.status() === "connected") {
      const batch = take(batchSize);
      inFlight += batch.length;
      const results = await Promise.allSettled(
        batch.map((p) =>
          context.with(p.parent ? trace.setSpanContext(ROOT_CONTEXT, p.parent) : ROOT_CONTEXT, () =>
            publishEvent(b.js, p.subject, p.payload, { msgId: p.id, timeoutMs: opts.publishTimeoutMs ?? 5_000 }),
          ),
        ),
      );
      inFlight -= batch.length;
      const failed = batch.filter((_, i) => results[i].status === "rejected");
      stats.published += batch.length - failed.length;
      if (failed.length > 0) {
        stats.failed += failed.length;
        // JetStream refusing a message (400: too large for the stream, …) is about that message,
        // not the connection: it gets a few more tries, then is dropped as undeliverable. Other
        // failures (timeouts, no responders, a lost connection) are retried until NATS is back.
        for (let i = 0; i < batch.length; i++) if (isRefusal(results[i])) batch[i].attempts++;
        const retry = failed.filter((p) => p.attempts < maxAttempts);
        stats.undeliverable += failed.length - retry.length;
        unshiftAll(retry);
        const t = now();
        if (t - lastWarn > 10_000) {
          lastWarn = t;
          const reason = results.find((r) => r.status === "rejected") as PromiseRejectedResult;
          log.warn(
            { err: reason.reason, failed: failed.length, buffered: count, undeliverable: stats.undeliverable },
            "publishing exposures failed; will retry",
          );
        }
        return;
      }
    }
  };

  const flush = () =>
    (flushing ??= publishRound()
      .catch((err: unknown) => log.warn({ err }, "exposure publishing round failed"))
      .finally(() => (flushing = undefined)));

  const loop = () => {
    if (stopped) return;
    timer = setTimeout(() => void flush().then(loop), opts.flushIntervalMs ?? 100);
    timer.unref();
  };

  return {
    record(e) {
      try {
        const key = dedupeSize > 0 ? `${e.environmentId}\u0000${e.experimentId}\u0000${e.flagKey}\u0000${e.unitKey}\u0000${e.variant}` : "";
        if (dedupeSize > 0 && recent.has(key)) {
          stats.suppressed++;
          return;
        }
        // Dropped for lack of room: not remembered, so the unit's next evaluation tries again.
        if (count === capacity || bytes >= capacityBytes) {
          stats.dropped++;
          return;
        }
        if (dedupeSize > 0) {
          recent.add(key);
          if (recent.size > dedupeSize) recent.delete(recent.values().next().value!);
        }
        const id = randomUUID();
        const time = timestampFromMs(now());
        const payload = toBinary(
          EventEnvelopeSchema,
          create(EventEnvelopeSchema, {
            eventId: id,
            organizationId: e.organizationId,
            projectId: e.projectId,
            environmentId: e.environmentId,
            receiveTime: time,
            payload: {
              case: "exposure",
              value: { flagKey: e.flagKey, variant: e.variant, experimentId: e.experimentId, unitKey: e.unitKey, time, dimensions: e.dimensions },
            },
          }),
        );
        if (payload.length > maxMessageBytes()) {
          stats.undeliverable++;
          return;
        }
        if (bytes + payload.length > capacityBytes) {
          stats.dropped++;
          return;
        }
        push({
          id,
          subject: layout.route(e.environmentId, e.unitKey, "exposure").subject,
          payload,
          attempts: 0,
          parent: trace.getSpanContext(context.active()),
        });
      } catch (err) {
        stats.dropped++;
        log.error({ err }, "recording an exposure failed");
      }
    },
    attach(b) {
      if (bus) return;
      bus = b;
      loop();
    },
    flush,
    stats: () => ({ buffered: count + inFlight, bufferedBytes: bytes, ...stats }),
    async stop(timeoutMs = 2_000) {
      stopped = true;
      clearTimeout(timer);
      await Promise.race([flush(), new Promise((r) => setTimeout(r, timeoutMs).unref())]);
      if (count > 0) log.warn({ buffered: count }, "stopping with unpublished exposures");
    },
  };
}

/** A publish JetStream answered with a client error (HTTP-like status 400). */
function isRefusal(r: PromiseSettledResult<unknown>): boolean {
  if (r.status !== "rejected") return false;
  const err = r.reason as { name?: string; code?: number; status?: number } | undefined;
  return err?.name === "JetStreamApiError" && (err.code === 400 || err.status === 400);
}
