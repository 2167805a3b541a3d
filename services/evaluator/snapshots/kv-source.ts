/**
 * Feeds the snapshot store from the JetStream KV bucket the flags service writes
 * (`vane_snapshots`, key = environment id, value = a SnapshotEnvelope holding the compressed
 * EnvironmentSnapshot inline or naming its chunks, or a bare EnvironmentSnapshot as written
 * before; lib/bus/snapshots.ts). Only environments' keys are watched (`*`): chunks are read
 * by revision when a manifest names them. The watch starts with every key's last value, then follows updates; when the connection or
 * the watch breaks it starts again (versions already held are skipped). The store keeps
 * serving whatever it holds in the meantime.
 */
import { fromBinary } from "@bufbuild/protobuf";
import type { KV, KvWatchEntry } from "@nats-io/kv";
import { EnvironmentSnapshotSchema } from "#gen/vane/flags/v1/snapshot_pb.js";
import type { Bus } from "#lib/bus/bus.ts";
import { readSnapshotBytes } from "#lib/bus/snapshots.ts";
import { FlagSetError } from "#engine";
import type { Logger } from "#lib/process/logger.ts";
import { versionFromSnapshot, type SnapshotStore } from "./store.ts";

/** The state of the feed, for readiness and metrics. */
export interface KvSourceStatus {
  /** The watch is running on a connected bus. */
  live: boolean;
  /** The initial load (every key's last value) has been applied at least once. */
  synced: boolean;
  /** Why the feed is not live, for a person. */
  problem: string | undefined;
  /** When the feed was last known to be live (ms since the epoch); undefined if never. */
  lastLiveMs: number | undefined;
}

/** Options for {@link createKvSnapshotSource}. */
export interface KvSourceOptions {
  bucket: string;
  store: SnapshotStore;
  logger: Logger;
  /** Pause before watching again after a failure (default 1 s). */
  retryMs?: number;
  /** A snapshot that failed to compile. */
  onRejected?: (environmentId: string, err: unknown) => void;
}

/** The running feed. */
export interface KvSnapshotSource {
  /** Starts watching on `bus` (call once the bus is connected). */
  attach(bus: Bus): void;
  status(): KvSourceStatus;
  stop(): Promise<void>;
}

/** Creates the feed; nothing happens until {@link KvSnapshotSource.attach}. */
export function createKvSnapshotSource(opts: KvSourceOptions): KvSnapshotSource {
  const log = opts.logger.child({ component: "kv-source", bucket: opts.bucket });
  let bus: Bus | undefined;
  let stopped = false;
  let watching = false;
  let synced = false;
  let problem: string | undefined = "not connected to NATS yet";
  let lastLiveMs: number | undefined;
  let iterator: { stop(): void } | undefined;
  let loop: Promise<void> | undefined;
  let wake: (() => void) | undefined;

  const live = () => watching && bus?.status() === "connected";
  // Remember the last moment the feed was live, so staleness can be measured after it breaks.
  const tick = setInterval(() => {
    if (live()) lastLiveMs = Date.now();
  }, 1000);
  tick.unref();

  // The store learns that it holds every environment there is, so it can tell "unknown" from
  // "not loaded yet" (the KV watch is the last feed to catch up: a flagd file loads before it).
  const markSynced = () => {
    synced = true;
    opts.store.markInitialLoadDone();
  };

  const handle = async (kv: KV, e: KvWatchEntry) => {
    const environmentId = e.key;
    if (e.operation === "DEL" || e.operation === "PURGE") {
      if (opts.store.get(environmentId)?.source === "kv" && opts.store.remove(environmentId)) log.info({ environmentId }, "environment removed");
      return;
    }
    try {
      const snapshot = fromBinary(EnvironmentSnapshotSchema, await readSnapshotBytes(kv, e.value));
      const version = versionFromSnapshot(snapshot);
      if (version.environmentId !== environmentId) {
        log.warn({ key: environmentId, environmentId: version.environmentId }, "snapshot key and environment id differ; using the key");
        version.environmentId = environmentId;
      }
      const outcome = opts.store.apply(version);
      if (outcome === "applied") log.debug({ environmentId, version: version.version }, "snapshot loaded");
    } catch (err) {
      opts.onRejected?.(environmentId, err);
      log.error(
        { err: err instanceof FlagSetError ? { message: err.message, issues: err.issues.slice(0, 10) } : err, environmentId, revision: e.revision },
        "snapshot rejected; keeping the previous version",
      );
    }
  };

  const watchOnce = async (b: Bus) => {
    const kv: KV = await b.kvm.open(opts.bucket);
    let initial: number;
    try {
      initial = (await kv.status()).values;
    } catch (err) {
      throw new Error(`KV bucket ${opts.bucket} not found: is the flags service running?`, { cause: err });
    }
    // One token: environments' keys, not the chunks (`<environment id>.chunk.<n>`).
    const it = await kv.watch({ key: "*" });
    iterator = it;
    // stop() may have run while the watch was being set up, with nothing yet to stop.
    if (stopped) it.stop();
    watching = true;
    problem = undefined;
    lastLiveMs = Date.now();
    if (initial === 0) markSynced();
    log.info({ keys: initial }, "watching snapshots");
    for await (const e of it) {
      await handle(kv, e);
      if (e.isUpdate && !synced) {
        markSynced();
        log.info({ environments: opts.store.size }, "initial snapshots loaded");
      }
      if (stopped) break;
    }
  };

  const run = async (b: Bus) => {
    while (!stopped) {
      try {
        await watchOnce(b);
        if (!stopped) problem = "the KV watch ended; watching again";
      } catch (err) {
        problem = err instanceof Error ? err.message : String(err);
        if (!stopped) log.warn({ err }, "snapshot watch failed; retrying");
      } finally {
        watching = false;
        iterator = undefined;
      }
      if (stopped) break;
      await new Promise<void>((resolve) => {
        const t = setTimeout(resolve, opts.retryMs ?? 1000);
        wake = () => (clearTimeout(t), resolve());
      });
      wake = undefined;
    }
  };

  return {
    attach(b) {
      if (bus || stopped) return;
      bus = b;
      problem = "connecting the KV watch";
      loop = run(b);
    },
    status() {
      const isLive = live();
      if (isLive) lastLiveMs = Date.now();
      let why = problem;
      if (!isLive && !why) why = bus ? `NATS is ${bus.status()}` : "not connected to NATS yet";
      return { live: isLive, synced, problem: isLive ? undefined : why, lastLiveMs };
    },
    async stop() {
      stopped = true;
      clearInterval(tick);
      iterator?.stop();
      wake?.();
      await loop;
    },
  };
}
