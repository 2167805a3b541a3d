/** The analytics service's own settings. */
import { eventsStreamSetting } from "#lib/bus/streams.ts";
import { eventsPartitionsSetting } from "#lib/bus/partitions.ts";
import type { EnvReader } from "#lib/process/config.ts";

export interface AnalyticsConfig {
  /** identity's gRPC base URL, for resolving projects and environments. */
  identityUrl: string | undefined;
  /** flags' gRPC base URL, for configuring experiment flags. */
  flagsUrl: string | undefined;
  /** `VANE_EVENTS_STREAM` (default VANE_EVENTS). */
  eventsStream: string;
  /** `VANE_EVENTS_PARTITIONS` (default 1): partition streams consumed, claimed among the replicas. */
  partitions: number;
  /** `VANE_ANALYTICS_CONSUMER`: the durable consumer's name (default analytics). */
  consumerName: string;
  /** `VANE_ANALYTICS_BATCH`: events per transaction (default 2000). */
  batchSize: number;
  /** `VANE_ANALYTICS_GAP_WAIT`: how long earlier messages may stay out before the pipeline reads them from the stream itself (default 2s). */
  gapWaitMs: number;
  /** `VANE_ANALYTICS_CLOCK_SKEW_MS`: how long before an exposure an event still counts after it (default 1000). */
  clockSkewMs: number;
  /** `VANE_BANDIT_INTERVAL`: seconds between re-weightings of a bandit that sets none (default 3600). */
  banditIntervalSeconds: number;
  /** `VANE_JETSTREAM_REPLICAS` for the stream when this process creates it (default 1). */
  replicas: number;
}

/** Reads the analytics service's settings. */
export function readAnalyticsConfig(env: EnvReader): AnalyticsConfig {
  return {
    identityUrl: env.url("VANE_IDENTITY_URL", undefined, ["http", "https"]),
    flagsUrl: env.url("VANE_FLAGS_URL", undefined, ["http", "https"]),
    eventsStream: eventsStreamSetting(env),
    partitions: eventsPartitionsSetting(env),
    consumerName: env.string("VANE_ANALYTICS_CONSUMER", "analytics"),
    batchSize: env.int("VANE_ANALYTICS_BATCH", 2000, { min: 1, max: 50_000 }),
    gapWaitMs: env.durationMs("VANE_ANALYTICS_GAP_WAIT", "2s"),
    clockSkewMs: env.int("VANE_ANALYTICS_CLOCK_SKEW_MS", 1000, { min: 0, max: 3_600_000 }),
    banditIntervalSeconds: env.int("VANE_BANDIT_INTERVAL", 3600, { min: 60, max: 604_800 }),
    replicas: env.int("VANE_JETSTREAM_REPLICAS", 1, { min: 1, max: 5 }),
  };
}
