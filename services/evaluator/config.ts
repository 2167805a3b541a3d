/** The evaluator's own settings, read from `VANE_*` variables. */
import { availableParallelism } from "node:os";
import { eventsStreamSetting } from "#lib/bus/streams.ts";
import { eventsPartitionsSetting } from "#lib/bus/partitions.ts";
import type { EnvReader } from "#lib/process/config.ts";
import type { FlagdAuth } from "./flagd/access.ts";

/** Settings of the evaluator beyond the shared ones. */
export interface EvaluatorConfig {
  /** Port of flagd.evaluation.v1/v2 (gRPC h2c and Connect); null turns it off. */
  flagdPort: number | null;
  /** Port of flagd.sync.v1; null turns it off. */
  flagdSyncPort: number | null;
  /** The environment flagd callers get when they send no selector and no token. */
  flagdEnvironment: string | undefined;
  /**
   * `VANE_FLAGD_AUTH`: `key` (default) — every flagd call carries a server or client API key as
   * its selector, or a bearer token; `none` — a trusted port where selectors name environments.
   */
  flagdAuth: FlagdAuth;
  /** `VANE_IDENTITY_URL`: identity's gRPC base URL, to exchange API keys sent as flagd selectors. */
  identityUrl: string | undefined;
  /** How often flagd event streams send `keep_alive`. */
  flagdKeepAliveMs: number;
  /** A flagd flag-definition file to serve (and follow) as a local environment. */
  flagdFile: string | undefined;
  /** The id of the environment the file is served as. */
  flagdFileEnvironment: string;
  /** The JetStream KV bucket holding environment snapshots. */
  snapshotBucket: string;
  /** The JetStream stream exposures are published to. */
  eventsStream: string;
  /** `VANE_EVENTS_PARTITIONS` (default 1): exposures go to their unit's partition stream. */
  eventsPartitions: number;
  /** Exposures held while NATS is unreachable; beyond that they are dropped and counted. */
  exposureBufferSize: number;
  /** `VANE_EXPOSURE_BUFFER_BYTES` (default 16 MiB): the same buffer bounded in bytes. */
  exposureBufferBytes: number;
  /** `VANE_BULK_CACHE_ENTRIES` (default 10,000; 0 turns it off): EvaluateAll answers kept for repeated contexts. */
  bulkCacheEntries: number;
  /** `VANE_BULK_CACHE_BYTES` (default 64 MiB): the same cache bounded in bytes of encoded answers. */
  bulkCacheBytes: number;
  /**
   * `VANE_EVALUATOR_PROCESSES` (default 1; `auto`: one per core): processes serving the same
   * ports (lib/process/cluster.ts), to use every core of a machine.
   */
  processes: number;
  /** Ready even before the snapshot bucket has been read (tests, local experiments); never in production. */
  readyWithoutSnapshots: boolean;
}

/** Reads the evaluator's settings. */
export function readEvaluatorConfig(env: EnvReader): EvaluatorConfig {
  const port = (name: string, fallback: number) => {
    if (env.optional(name)?.toLowerCase() === "off") return null;
    return env.int(name, fallback, { min: 0, max: 65535 });
  };
  return {
    flagdPort: port("VANE_FLAGD_PORT", 8013),
    flagdSyncPort: port("VANE_FLAGD_SYNC_PORT", 8015),
    flagdEnvironment: env.optional("VANE_FLAGD_ENVIRONMENT"),
    flagdAuth: env.oneOf<FlagdAuth>("VANE_FLAGD_AUTH", "key", ["key", "none"]),
    identityUrl: env.url("VANE_IDENTITY_URL", undefined, ["http", "https"]),
    flagdKeepAliveMs: env.durationMs("VANE_FLAGD_KEEPALIVE", "20s"),
    flagdFile: env.optional("VANE_FLAGD_FILE"),
    flagdFileEnvironment: env.string("VANE_FLAGD_FILE_ENVIRONMENT", "local"),
    snapshotBucket: env.string("VANE_SNAPSHOT_BUCKET", "vane_snapshots"),
    eventsStream: eventsStreamSetting(env),
    eventsPartitions: eventsPartitionsSetting(env),
    exposureBufferSize: env.int("VANE_EXPOSURE_BUFFER", 10_000, { min: 1, max: 10_000_000 }),
    exposureBufferBytes: env.int("VANE_EXPOSURE_BUFFER_BYTES", 16 << 20, { min: 64 << 10, max: 1 << 30 }),
    bulkCacheEntries: env.int("VANE_BULK_CACHE_ENTRIES", 10_000, { min: 0, max: 10_000_000 }),
    bulkCacheBytes: env.int("VANE_BULK_CACHE_BYTES", 64 << 20, { min: 0, max: 16 << 30 }),
    processes:
      env.optional("VANE_EVALUATOR_PROCESSES")?.trim().toLowerCase() === "auto"
        ? availableParallelism()
        : env.int("VANE_EVALUATOR_PROCESSES", 1, { min: 1, max: 256 }),
    readyWithoutSnapshots: env.bool("VANE_EVALUATOR_READY_WITHOUT_SNAPSHOTS", false),
  };
}
