/**
 * The analytics pipeline: a durable pull consumer on the events stream that applies batches of
 * events in one Postgres transaction each (see apply.ts) and acknowledges them only after the
 * commit. At most one batch per consumer is outstanding (`max_ack_pending` = batch size), so a
 * crash leaves exactly the uncommitted batch to be redelivered, in stream order, before anything
 * newer: the event ids committed with the aggregates make redelivery harmless.
 *
 * Events are applied in stream order. The pipeline keeps its own floor (`consumer_positions`,
 * committed with each batch) beside the server's ack floor, and never waits on either for long:
 * when earlier messages stay out for `gapWaitMs` (a redelivery the server lost track of after a
 * crash, or messages a fetch dropped when its heartbeats were missed), it reads them from the
 * stream by sequence and applies them itself, then goes on.
 */
import { timestampDate } from "@bufbuild/protobuf/wkt";
import { metrics } from "@opentelemetry/api";
import { AckPolicy, DeliverPolicy, type JsMsg } from "@nats-io/jetstream";
import type { Bus } from "#lib/bus/bus.ts";
import { withConsumerSpan } from "#lib/bus/bus-trace.ts";
import { withTransaction } from "#lib/data/db.ts";
import type { Logger } from "#lib/process/logger.ts";
import { sql } from "kysely";
import type { Db, Trx } from "../store.ts";
import { type ApplyResult, applyBatch, lockPipeline, type PipelineEvent, pruneProcessed } from "./apply.ts";
import { decodeEnvelope, environmentOfSubject, isUuid } from "#lib/bus/events.ts";
import { boundedDimensions } from "../breakdown-dimensions.ts";

export type { PipelineEvent };

const MS = 1_000_000;

/** Options for {@link startPipeline}. */
export interface PipelineOptions {
  db: Db;
  bus: Bus;
  /** The events stream (VANE_EVENTS). */
  stream: string;
  /** The durable consumer's name (default "analytics"). */
  consumerName?: string;
  /**
   * The pipeline's row in `consumer_positions` and the name of its lock (default: the consumer's
   * name). A partition's pipeline has its own (partitions.ts), as its stream has its own sequence.
   */
  positionKey?: string;
  /** A lock held shared while applying: a partition's pipeline holds the unpartitioned pipeline's. */
  sharedLock?: string;
  /** Messages per batch (and the consumer's max_ack_pending). Default 2000. */
  batchSize?: number;
  /** How long a fetched batch may stay unacknowledged before redelivery. Default 30 s. */
  ackWaitMs?: number;
  /** How long one fetch waits for messages (at least 1 s, the client's minimum). Default 1 s. */
  fetchExpiresMs?: number;
  /** How long earlier messages may stay out before the pipeline reads them from the stream itself. Default 2 s. */
  gapWaitMs?: number;
  /** Clock skew tolerated between exposure and event times (see apply.ts). Default 1000 ms. */
  skewToleranceMs?: number;
  /** Dedupe keys older than this are pruned (default 8 days: the stream keeps 7). */
  dedupeRetentionMs?: number;
  logger: Logger;
  /** Called after a batch commits and before it is acknowledged (tests crash here on purpose). */
  afterCommit?: (result: ApplyResult) => void;
}

/** A running pipeline. */
export interface Pipeline {
  readonly consumerName: string;
  /** Messages and redeliveries seen, batches applied (for tests and logs). */
  stats(): { processed: number; duplicates: number; redeliveries: number; batches: number; orderWaits: number; gapFills: number };
  /** Stops fetching, finishes the batch in hand, and returns. */
  stop(): Promise<void>;
}

/** Turns a message into an event for apply.ts. */
export function decodeEvent(m: { data: Uint8Array; seq: number; subject: string }): PipelineEvent {
  const env = decodeEnvelope(m.data);
  if (!env) return { kind: "skip", id: `seq:${m.seq}`, seq: m.seq, environmentId: "" };
  const id = env.eventId || `seq:${m.seq}`;
  const receive = env.receiveTime ? timestampDate(env.receiveTime) : new Date();
  const environmentId = env.environmentId || environmentOfSubject(m.subject);
  if (!isUuid(environmentId)) return { kind: "skip", id, seq: m.seq, environmentId: "" };
  if (env.payload.case === "exposure") {
    const x = env.payload.value;
    if (!x.experimentId || !x.unitKey || !x.variant) return { kind: "skip", id, seq: m.seq, environmentId };
    return {
      kind: "exposure",
      id,
      seq: m.seq,
      environmentId,
      time: x.time ? timestampDate(x.time) : receive,
      experimentId: x.experimentId,
      variant: x.variant,
      unitKey: x.unitKey,
      ...(Object.keys(x.dimensions).length > 0 ? { dimensions: boundedDimensions(x.dimensions) } : {}),
    };
  }
  if (env.payload.case === "track") {
    const t = env.payload.value;
    // Without a valid project no metric can apply; skipping also keeps a malformed message from blocking the stream.
    if (!t.unitKey || !t.name || !isUuid(env.projectId)) return { kind: "skip", id, seq: m.seq, environmentId };
    return {
      kind: "track",
      id,
      seq: m.seq,
      environmentId,
      projectId: env.projectId,
      time: receive,
      name: t.name,
      unitKey: t.unitKey,
      value: Number.isFinite(t.value) ? (t.value as number) : 0,
    };
  }
  return { kind: "skip", id, seq: m.seq, environmentId };
}

/** Creates (or updates) the durable consumer and starts the fetch → apply → ack loop. */
export async function startPipeline(opts: PipelineOptions): Promise<Pipeline> {
  const name = opts.consumerName ?? "analytics";
  const positionKey = opts.positionKey ?? name;
  const batchSize = opts.batchSize ?? 2000;
  const log = opts.logger.child({ component: "pipeline", consumer: name, stream: opts.stream });
  const config = {
    durable_name: name,
    ack_policy: AckPolicy.Explicit,
    deliver_policy: DeliverPolicy.All,
    ack_wait: (opts.ackWaitMs ?? 30_000) * MS,
    max_ack_pending: batchSize,
    max_deliver: -1,
  };
  try {
    await opts.bus.jsm.consumers.add(opts.stream, config);
  } catch {
    const { durable_name: _d, deliver_policy: _p, ...update } = config;
    await opts.bus.jsm.consumers.update(opts.stream, name, update);
  }
  const consumer = await opts.bus.js.consumers.get(opts.stream, name);

  const meter = metrics.getMeter("vane.analytics");
  const attrs = { consumer: name, stream: opts.stream };
  const processedCounter = meter.createCounter("vane_pipeline_events_processed", { description: "Events applied to the aggregates (rate = events/s)" });
  const duplicateCounter = meter.createCounter("vane_pipeline_duplicates", { description: "Events skipped because their id was applied before" });
  const redeliveryCounter = meter.createCounter("vane_pipeline_redeliveries", { description: "Messages JetStream delivered more than once" });
  const gapCounter = meter.createCounter("vane_pipeline_order_waits", { description: "Fetched batches handed back because earlier messages were still out" });
  const batchDuration = meter.createHistogram("vane_pipeline_batch_duration", { unit: "ms", description: "Time to apply and acknowledge one batch" });
  const gapFillCounter = meter.createCounter("vane_pipeline_gap_fills", {
    description: "Times earlier messages stayed out and the pipeline read them from the stream itself",
  });
  gapFillCounter.add(0, { consumer: name, stream: opts.stream }); // exported from the start, for the alert
  let lag = 0;
  let ackPending = 0;
  const lagGauge = meter.createObservableGauge("vane_consumer_lag", { description: "Messages in the stream not yet delivered to the consumer" });
  const pendingGauge = meter.createObservableGauge("vane_consumer_ack_pending", { description: "Messages delivered but not yet acknowledged" });
  const observe = (r: { observe(v: number, a: typeof attrs): void }, v: () => number) => r.observe(v(), attrs);
  const lagCb = (r: Parameters<Parameters<typeof lagGauge.addCallback>[0]>[0]) => observe(r, () => lag);
  const pendingCb = (r: Parameters<Parameters<typeof pendingGauge.addCallback>[0]>[0]) => observe(r, () => ackPending);
  lagGauge.addCallback(lagCb);
  pendingGauge.addCallback(pendingCb);

  const stats = { processed: 0, duplicates: 0, redeliveries: 0, batches: 0, gapFills: 0 };
  const gapWaitMs = opts.gapWaitMs ?? 2_000;
  // The pipeline's own floor: every event up to it is applied (committed with the aggregates).
  let position = Number(
    (await opts.db.selectFrom("consumer_positions").select("stream_seq").where("consumer", "=", positionKey).executeTakeFirst())?.stream_seq ?? 0,
  );
  // A gap: the floor it sits on, and since when.
  let gap: { floor: number; since: number } | undefined;
  let stopping = false;
  const abort = new AbortController();
  let lastInfo = 0;
  let lastPrune = Date.now();

  /**
   * The prefix of a fetched batch (sorted) that continues the floor — the server's ack floor or
   * the pipeline's own position, whichever is further — without a gap. Messages at or below the
   * floor are applied already (a redelivery): they are acknowledged. A gap means earlier messages
   * are still out (with a crashed replica, or dropped by a fetch): applying later ones first would
   * change what counts as "before the exposure", so the rest is handed back; `gapEnd` says where
   * the gap ends, for the pipeline to fill it itself if it stays open.
   */
  const inOrder = async (msgs: JsMsg[]): Promise<{ ready: JsMsg[]; floor: number; gapEnd?: number }> => {
    const info = await consumer.info();
    lastInfo = Date.now();
    lag = info.num_pending;
    ackPending = info.num_ack_pending;
    let floor = Math.max(info.ack_floor.stream_seq, position);
    if (msgs[0].seq > floor + 1) {
      // Messages removed by the stream's limits before they were delivered leave no gap to wait for.
      const first = (await opts.bus.jsm.streams.info(opts.stream)).state.first_seq;
      floor = Math.max(floor, first - 1);
    }
    const applied = msgs.filter((m) => m.seq <= floor);
    for (const m of applied) m.ack();
    if (applied.length > 0) stats.duplicates += applied.length;
    const fresh = msgs.filter((m) => m.seq > floor);
    let n = 0;
    while (n < fresh.length && fresh[n].seq === floor + 1 + n) n++;
    if (n < fresh.length) {
      gaps++;
      gapCounter.add(1, attrs);
      for (const m of fresh.slice(n)) m.nak(200);
      if (n === 0) log.debug({ floor, first: fresh[0].seq }, "waiting for earlier messages to be redelivered");
    }
    return { ready: fresh.slice(0, n), floor, gapEnd: n === 0 && fresh.length > 0 ? fresh[0].seq : undefined };
  };

  /** Applies decoded events and advances the pipeline's own floor, in one transaction. */
  const apply = (events: PipelineEvent[], lastSeq: number) =>
    withTransaction(
      opts.db,
      async (trx: Trx) => {
        await lockPipeline(trx, positionKey, opts.sharedLock);
        const result = await applyBatch(trx, events, { skewToleranceMs: opts.skewToleranceMs });
        await trx
          .insertInto("consumer_positions")
          .values({ consumer: positionKey, stream_seq: lastSeq })
          .onConflict((oc) =>
            oc.column("consumer").doUpdateSet({ stream_seq: sql`greatest(consumer_positions.stream_seq, excluded.stream_seq)`, updated_at: sql`now()` }),
          )
          .execute();
        return result;
      },
      { retries: 5 },
    );

  /**
   * Fills a gap that stayed open: reads the missing messages from the stream by sequence and
   * applies them (their ids make a later redelivery harmless). The server's record of them is
   * left alone: when they come back, they are at or below the floor and acknowledged.
   */
  const fillGap = async (floor: number, gapEnd: number) => {
    const events: PipelineEvent[] = [];
    const last = Math.min(gapEnd - 1, floor + batchSize);
    for (let seq = floor + 1; seq <= last; seq++) {
      const m = await opts.bus.jsm.streams.getMessage(opts.stream, { seq }).catch(() => null);
      if (m) events.push(decodeEvent({ data: m.data, seq: m.seq, subject: m.subject }));
    }
    const result = await apply(events, last);
    position = Math.max(position, last);
    stats.gapFills++;
    stats.processed += result.applied;
    stats.duplicates += result.duplicates;
    gapFillCounter.add(1, attrs);
    processedCounter.add(result.applied, attrs);
    log.warn({ floor, filled: `${floor + 1}..${last}`, applied: result.applied }, "earlier messages stayed out: read them from the stream and applied them");
  };
  let gaps = 0;

  /**
   * Continues each message's trace (from its headers) with a CONSUMER span that lasts until the
   * batch commits; the transaction runs inside the first such span, so its database work joins
   * that trace. Messages published without a trace context get no span: nothing to continue, and
   * thousands of empty spans per batch would cost throughput.
   */
  const traced = async <T>(msgs: JsMsg[], work: () => Promise<T>): Promise<T> => {
    const carriers = msgs.filter((m) => m.headers?.has("traceparent"));
    if (carriers.length === 0) return work();
    const spanAttrs = { "vane.pipeline.batch_size": msgs.length };
    return withConsumerSpan(
      carriers[0],
      opts.stream,
      async () => {
        const running = work();
        await Promise.allSettled(carriers.slice(1).map((m) => withConsumerSpan(m, opts.stream, () => running, spanAttrs)));
        return running;
      },
      spanAttrs,
    );
  };

  const loop = async () => {
    while (!stopping) {
      try {
        const fetched: JsMsg[] = [];
        const iter = await consumer.fetch({ max_messages: batchSize, expires: Math.max(1000, opts.fetchExpiresMs ?? 1000) });
        try {
          for await (const m of iter) fetched.push(m);
        } catch (err) {
          // A fetch that ends early ("heartbeats missed" on a busy event loop, a reconnect) still
          // delivered what it delivered: apply it now rather than leave it to the ack wait.
          if (fetched.length === 0) throw err;
          log.debug({ err, fetched: fetched.length }, "fetch ended early; applying what arrived");
        }
        fetched.sort((a, b) => a.seq - b.seq);
        const { ready: msgs, floor, gapEnd } = fetched.length ? await inOrder(fetched) : { ready: [], floor: position, gapEnd: undefined };
        if (gapEnd === undefined) gap = undefined;
        else if (gap?.floor !== floor) gap = { floor, since: Date.now() };
        else if (Date.now() - gap.since >= gapWaitMs) {
          await fillGap(floor, gapEnd);
          gap = undefined;
        }
        if (msgs.length > 0) {
          const started = performance.now();
          const events = msgs.map((m) => decodeEvent({ data: m.data, seq: m.seq, subject: m.subject }));
          const redelivered = msgs.filter((m) => m.redelivered).length;
          let result;
          try {
            result = await traced(msgs, () => apply(events, msgs.at(-1)!.seq));
          } catch (err) {
            // Nothing committed: hand the batch back for prompt redelivery, in order.
            for (const m of msgs) m.nak(1000);
            throw err;
          }
          position = Math.max(position, msgs.at(-1)!.seq);
          opts.afterCommit?.(result);
          for (const m of msgs) m.ack();
          await opts.bus.nc.flush();
          stats.processed += result.applied;
          stats.duplicates += result.duplicates;
          stats.redeliveries += redelivered;
          stats.batches++;
          processedCounter.add(result.applied, attrs);
          if (result.duplicates) duplicateCounter.add(result.duplicates, attrs);
          if (redelivered) redeliveryCounter.add(redelivered, attrs);
          batchDuration.record(performance.now() - started, attrs);
        } else if (Date.now() - lastInfo > 5000) {
          lastInfo = Date.now();
          const info = await consumer.info();
          lag = info.num_pending;
          ackPending = info.num_ack_pending;
        }
        if (Date.now() - lastPrune > 3_600_000) {
          lastPrune = Date.now();
          await pruneProcessed(opts.db, opts.dedupeRetentionMs ?? 8 * 86_400_000);
        }
      } catch (err) {
        if (stopping) break;
        // Nothing was acknowledged: the batch comes back after ack_wait.
        log.error({ err }, "applying a batch failed; retrying");
        await new Promise((r) => setTimeout(r, 1000)).catch(() => undefined);
      }
    }
  };
  const running = loop();
  log.info({ stream: opts.stream, batchSize }, "pipeline started");
  return {
    consumerName: name,
    stats: () => ({ ...stats, orderWaits: gaps }),
    async stop() {
      stopping = true;
      abort.abort();
      await running;
      lagGauge.removeCallback(lagCb);
      pendingGauge.removeCallback(pendingCb);
    },
  };
}
