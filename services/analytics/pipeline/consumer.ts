/**
 * The analytics pipeline: a durable pull consumer on the events stream that applies batches of
 * events in one Postgres transaction each (see apply.ts) and acknowledges them only after the
 * commit. At most one batch per consumer is outstanding (`max_ack_pending` = batch size), so a
 * crash leaves exactly the uncommitted batch to be redelivered, in stream order, before anything
 * newer: the event ids committed with the aggregates make redelivery harmless.
 */
import { fromBinary } from "@bufbuild/protobuf";
import { timestampDate } from "@bufbuild/protobuf/wkt";
import { metrics } from "@opentelemetry/api";
import { AckPolicy, DeliverPolicy, type JsMsg } from "@nats-io/jetstream";
import { EventEnvelopeSchema } from "#gen/vane/events/v1/events_pb.js";
import type { Bus } from "#lib/bus/bus.ts";
import { withConsumerSpan } from "#lib/bus/bus-trace.ts";
import { withTransaction } from "#lib/data/db.ts";
import type { Logger } from "#lib/process/logger.ts";
import type { Db } from "../store.ts";
import { type ApplyResult, applyBatch, lockPipeline, type PipelineEvent, pruneProcessed } from "./apply.ts";

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
  /** Messages per batch (and the consumer's max_ack_pending). Default 2000. */
  batchSize?: number;
  /** How long a fetched batch may stay unacknowledged before redelivery. Default 30 s. */
  ackWaitMs?: number;
  /** How long one fetch waits for messages (at least 1 s, the client's minimum). Default 1 s. */
  fetchExpiresMs?: number;
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
  stats(): { processed: number; duplicates: number; redeliveries: number; batches: number; orderWaits: number };
  /** Stops fetching, finishes the batch in hand, and returns. */
  stop(): Promise<void>;
}

/** Turns a message into an event for apply.ts. */
export function decodeEvent(m: { data: Uint8Array; seq: number; subject: string }): PipelineEvent {
  let env;
  try {
    env = fromBinary(EventEnvelopeSchema, m.data);
  } catch {
    return { kind: "skip", id: `seq:${m.seq}`, seq: m.seq, environmentId: "" };
  }
  const id = env.eventId || `seq:${m.seq}`;
  const receive = env.receiveTime ? timestampDate(env.receiveTime) : new Date();
  const environmentId = env.environmentId || m.subject.split(".").at(-2) || "";
  if (!/^[0-9a-f-]{36}$/i.test(environmentId)) return { kind: "skip", id, seq: m.seq, environmentId: "" };
  if (env.payload.case === "exposure") {
    const x = env.payload.value;
    if (!x.experimentId || !x.unitKey || !x.variant) return { kind: "skip", id, seq: m.seq, environmentId };
    return { kind: "exposure", id, seq: m.seq, environmentId, time: x.time ? timestampDate(x.time) : receive, experimentId: x.experimentId, variant: x.variant, unitKey: x.unitKey };
  }
  if (env.payload.case === "track") {
    const t = env.payload.value;
    // Without a valid project no metric can apply; skipping also keeps a malformed message from blocking the stream.
    if (!t.unitKey || !t.name || !/^[0-9a-f-]{36}$/i.test(env.projectId)) return { kind: "skip", id, seq: m.seq, environmentId };
    return { kind: "track", id, seq: m.seq, environmentId, projectId: env.projectId, time: receive, name: t.name, unitKey: t.unitKey, value: Number.isFinite(t.value) ? (t.value as number) : 0 };
  }
  return { kind: "skip", id, seq: m.seq, environmentId };
}

/** Creates (or updates) the durable consumer and starts the fetch → apply → ack loop. */
export async function startPipeline(opts: PipelineOptions): Promise<Pipeline> {
  const name = opts.consumerName ?? "analytics";
  const batchSize = opts.batchSize ?? 2000;
  const log = opts.logger.child({ component: "pipeline", consumer: name });
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
  let lag = 0;
  let ackPending = 0;
  const lagGauge = meter.createObservableGauge("vane_consumer_lag", { description: "Messages in the stream not yet delivered to the consumer" });
  const pendingGauge = meter.createObservableGauge("vane_consumer_ack_pending", { description: "Messages delivered but not yet acknowledged" });
  const observe = (r: { observe(v: number, a: typeof attrs): void }, v: () => number) => r.observe(v(), attrs);
  const lagCb = (r: Parameters<Parameters<typeof lagGauge.addCallback>[0]>[0]) => observe(r, () => lag);
  const pendingCb = (r: Parameters<Parameters<typeof pendingGauge.addCallback>[0]>[0]) => observe(r, () => ackPending);
  lagGauge.addCallback(lagCb);
  pendingGauge.addCallback(pendingCb);

  const stats = { processed: 0, duplicates: 0, redeliveries: 0, batches: 0 };
  let stopping = false;
  const abort = new AbortController();
  let lastInfo = 0;
  let lastPrune = Date.now();

  /**
   * The prefix of a fetched batch (sorted) that continues the acknowledged floor without a gap.
   * A gap means earlier messages are still out (with a crashed replica, or dropped by a fetch that
   * expired as they arrived): applying later ones first would change what counts as "before the
   * exposure", so the rest is handed back and waits until the gap is redelivered.
   */
  const inOrder = async (msgs: JsMsg[]): Promise<JsMsg[]> => {
    const info = await consumer.info();
    lastInfo = Date.now();
    lag = info.num_pending;
    ackPending = info.num_ack_pending;
    let floor = info.ack_floor.stream_seq;
    if (msgs[0].seq !== floor + 1) {
      // Messages removed by the stream's limits before they were delivered leave no gap to wait for.
      const first = (await opts.bus.jsm.streams.info(opts.stream)).state.first_seq;
      floor = Math.max(floor, first - 1);
    }
    let n = 0;
    while (n < msgs.length && msgs[n].seq === floor + 1 + n) n++;
    if (n < msgs.length) {
      gaps++;
      gapCounter.add(1, attrs);
      for (const m of msgs.slice(n)) m.nak(200);
      if (n === 0) log.debug({ floor, first: msgs[0].seq }, "waiting for earlier messages to be redelivered");
    }
    return msgs.slice(0, n);
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
        for await (const m of iter) fetched.push(m);
        fetched.sort((a, b) => a.seq - b.seq);
        const msgs = fetched.length ? await inOrder(fetched) : [];
        if (msgs.length > 0) {
          const started = performance.now();
          const events = msgs.map((m) => decodeEvent({ data: m.data, seq: m.seq, subject: m.subject }));
          const redelivered = msgs.filter((m) => m.redelivered).length;
          let result;
          try {
            result = await traced(msgs, () =>
              withTransaction(
                opts.db,
                async (trx) => {
                  await lockPipeline(trx, name);
                  return applyBatch(trx, events, { skewToleranceMs: opts.skewToleranceMs });
                },
                { retries: 5 },
              ),
            );
          } catch (err) {
            // Nothing committed: hand the batch back for prompt redelivery, in order.
            for (const m of msgs) m.nak(1000);
            throw err;
          }
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
