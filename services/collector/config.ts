/** The collector's own settings, read alike by its standalone entry point and by `npm start`. */
import type { EnvReader } from "#lib/process/config.ts";
import { eventsStreamSetting } from "#lib/bus/streams.ts";
import { eventsPartitionsSetting } from "#lib/bus/partitions.ts";

export interface CollectorConfig {
  /** `VANE_EVENTS_STREAM` (default VANE_EVENTS): the stream the evaluator and analytics use too. */
  eventsStream: string;
  /** `VANE_EVENTS_PARTITIONS` (default 1): the partition streams events are spread over, by unit. */
  partitions: number;
  /** `VANE_TRACK_MAX_IN_FLIGHT`: JetStream acknowledgements outstanding at most (default 10 000). */
  maxInFlight: number;
  /** `VANE_TRACK_RATE` / `VANE_TRACK_BURST`: events per second and burst, per key. */
  rate: { perSecond: number; burst: number };
  /** `VANE_JETSTREAM_REPLICAS` for the stream when this process creates it (default 1). */
  replicas: number;
}

/** Reads the collector's settings. */
export function readCollectorConfig(env: EnvReader): CollectorConfig {
  return {
    eventsStream: eventsStreamSetting(env),
    partitions: eventsPartitionsSetting(env),
    maxInFlight: env.int("VANE_TRACK_MAX_IN_FLIGHT", 10_000, { min: 1000, max: 1_000_000 }),
    // The burst must hold the largest batch the contract allows (1,000 events), or such a batch
    // would be told to retry forever.
    rate: { perSecond: env.int("VANE_TRACK_RATE", 2000, { min: 1 }), burst: env.int("VANE_TRACK_BURST", 10_000, { min: 1000 }) },
    replicas: env.int("VANE_JETSTREAM_REPLICAS", 1, { min: 1, max: 5 }),
  };
}
