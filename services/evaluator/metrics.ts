/**
 * The evaluator's own metrics. Hot-path counts are plain integers read by observable
 * instruments at collection time, so evaluating never touches the metrics SDK.
 */
import { metrics, type BatchObservableResult, type Observable } from "@opentelemetry/api";
import type { SnapshotStore } from "./snapshots/store.ts";

/** Counters the evaluation surfaces bump. Keys are `<api>|<reason>`. */
export interface EvaluatorCounters {
  /** Counts one evaluation result (`n` of them: a cached bulk answer delivered again). */
  evaluation(api: string, reason: string, n?: number): void;
  /** Open streams by kind (vane_watch, flagd_events, flagd_sync). */
  streamOpened(kind: string): () => void;
  snapshotRejected(environmentId: string): void;
}

/** What the metrics read from the rest of the service at collection time. */
export interface EvaluatorMetricSources {
  store: SnapshotStore;
  /** Seconds since the snapshot feed was last known to be live (0 while live). */
  staleSeconds(): number;
  exposures(): { buffered: number; published: number; dropped: number; undeliverable: number; failed: number };
  now?: () => number;
}

/** Registers the evaluator's instruments on the global meter provider. */
export function createEvaluatorMetrics(sources: EvaluatorMetricSources): EvaluatorCounters & { stop(): void } {
  const now = sources.now ?? Date.now;
  const meter = metrics.getMeter("vane.evaluator");
  const evaluations = new Map<string, number>();
  const streams = new Map<string, number>();
  const rejected = new Map<string, number>();

  const age = meter.createObservableGauge("vane_evaluator_snapshot_age_seconds", {
    description: "Seconds since the held configuration version was committed, per environment",
    unit: "s",
  });
  const version = meter.createObservableGauge("vane_evaluator_snapshot_version", {
    description: "The configuration version held, per environment",
  });
  const loaded = meter.createObservableGauge("vane_evaluator_snapshots_loaded", { description: "Environments held in memory" });
  const stale = meter.createObservableGauge("vane_evaluator_snapshot_stale_seconds", {
    description: "Seconds since the snapshot feed (NATS KV watch) was last live; 0 while live",
    unit: "s",
  });
  const evalCount = meter.createObservableCounter("vane_evaluator_evaluations", { description: "Flag evaluations by API and reason" });
  const streamGauge = meter.createObservableGauge("vane_evaluator_open_streams", { description: "Open watch, flagd event and flagd sync streams" });
  const rejectedCount = meter.createObservableCounter("vane_evaluator_snapshots_rejected", {
    description: "Snapshot versions that failed to compile (the previous version kept serving)",
  });
  const exposurePublished = meter.createObservableCounter("vane_evaluator_exposures_published", { description: "Exposure events acknowledged by JetStream" });
  const exposureDropped = meter.createObservableCounter("vane_evaluator_exposures_dropped", {
    description:
      "Exposure events dropped: reason=buffer_full (NATS unreachable too long), reason=undeliverable (larger than max_payload, or refused again and again)",
  });
  const exposureFailed = meter.createObservableCounter("vane_evaluator_exposure_publish_failures", {
    description: "Exposure publish attempts that failed (retried)",
  });
  const exposureBuffered = meter.createObservableGauge("vane_evaluator_exposures_buffered", { description: "Exposure events waiting to be published" });

  const instruments: Observable[] = [
    age,
    version,
    loaded,
    stale,
    evalCount,
    streamGauge,
    rejectedCount,
    exposurePublished,
    exposureDropped,
    exposureFailed,
    exposureBuffered,
  ];
  const callback = (r: BatchObservableResult) => {
    const t = now();
    for (const s of sources.store.environments()) {
      const attrs = { environment_id: s.environmentId, source: s.source };
      r.observe(age, Math.max(0, (t - s.commitTimeMs) / 1000), attrs);
      r.observe(version, s.version, attrs);
    }
    r.observe(loaded, sources.store.size);
    r.observe(stale, sources.staleSeconds());
    for (const [key, n] of evaluations) {
      const [api, reason] = key.split("|");
      r.observe(evalCount, n, { api, reason });
    }
    for (const [kind, n] of streams) r.observe(streamGauge, n, { kind });
    for (const [env, n] of rejected) r.observe(rejectedCount, n, { environment_id: env });
    const e = sources.exposures();
    r.observe(exposurePublished, e.published);
    r.observe(exposureDropped, e.dropped, { reason: "buffer_full" });
    r.observe(exposureDropped, e.undeliverable, { reason: "undeliverable" });
    r.observe(exposureFailed, e.failed);
    r.observe(exposureBuffered, e.buffered);
  };
  meter.addBatchObservableCallback(callback, instruments);

  return {
    evaluation(api, reason, n = 1) {
      const key = `${api}|${reason}`;
      evaluations.set(key, (evaluations.get(key) ?? 0) + n);
    },
    streamOpened(kind) {
      streams.set(kind, (streams.get(kind) ?? 0) + 1);
      let closed = false;
      return () => {
        if (closed) return;
        closed = true;
        streams.set(kind, (streams.get(kind) ?? 1) - 1);
      };
    },
    snapshotRejected(env) {
      rejected.set(env, (rejected.get(env) ?? 0) + 1);
    },
    stop() {
      meter.removeBatchObservableCallback(callback, instruments);
    },
  };
}
