/** The flags service's own settings. */
import type { EnvReader } from "#lib/process/config.ts";

export interface FlagsConfig {
  /** identity's gRPC base URL, for resolving projects and environments. */
  identityUrl: string | undefined;
  /** `VANE_SNAPSHOT_BUCKET` (default vane_snapshots). */
  snapshotBucket: string;
  /** `VANE_SNAPSHOT_MAX_BYTES` (default 64 MiB, at most 1 GiB): the largest encoded snapshot of one environment (before compression). */
  maxSnapshotBytes: number;
  /** `VANE_OUTBOX_MAX_ATTEMPTS` (default 20): publish attempts before an outbox message is parked. */
  outboxMaxAttempts: number;
  /** `VANE_OUTBOX_STUCK_AFTER` (default 5m; 0s turns it off): a message failing to publish for longer makes the relay's replica unready. */
  outboxStuckAfterMs: number;
  /** `VANE_DOMAIN_STREAM` (default VANE_DOMAIN). */
  domainStream: string;
  /** `VANE_DOMAIN_SUBJECT_PREFIX` (default vane.domain). */
  domainSubjectPrefix: string;
  /** `VANE_JETSTREAM_REPLICAS` for the stream and bucket (default 1). */
  replicas: number;
}

/** Reads the flags service's settings. */
export function readFlagsConfig(env: EnvReader): FlagsConfig {
  return {
    identityUrl: env.url("VANE_IDENTITY_URL", undefined, ["http", "https"]),
    snapshotBucket: env.string("VANE_SNAPSHOT_BUCKET", "vane_snapshots"),
    maxSnapshotBytes: env.int("VANE_SNAPSHOT_MAX_BYTES", 64 << 20, { min: 64 << 10, max: 1 << 30 }),
    outboxMaxAttempts: env.int("VANE_OUTBOX_MAX_ATTEMPTS", 20, { min: 1, max: 1000 }),
    outboxStuckAfterMs: env.durationMs("VANE_OUTBOX_STUCK_AFTER", "5m"),
    domainStream: env.string("VANE_DOMAIN_STREAM", "VANE_DOMAIN"),
    domainSubjectPrefix: env.string("VANE_DOMAIN_SUBJECT_PREFIX", "vane.domain"),
    replicas: env.int("VANE_JETSTREAM_REPLICAS", 1, { min: 1, max: 5 }),
  };
}
