/**
 * Assembles the flags service: database and migrations, NATS (the snapshot bucket and the domain
 * stream), the outbox relay, and the two Connect services.
 */
import { context, propagation, ROOT_CONTEXT } from "@opentelemetry/api";
import { headers as natsHeaders } from "@nats-io/transport-node";
import type { KV } from "@nats-io/kv";
import { ChangeService } from "#gen/vane/flags/v1/change_service_pb.js";
import { FlagService } from "#gen/vane/flags/v1/flag_service_pb.js";
import { SegmentService } from "#gen/vane/flags/v1/segment_service_pb.js";
import { type Bus, connectBus, ensureKv, ensureStream, type JetStreamManagement, publishEvent } from "#lib/bus/bus.ts";
import { createDatabase, type Database } from "#lib/data/db.ts";
import type { Logger } from "#lib/process/logger.ts";
import { migrateToLatest } from "#lib/data/migrations.ts";
import { createOutboxRelay, type OutboxRecord, type OutboxRelay, type StuckOutboxRow } from "#lib/data/outbox.ts";
import { serve } from "#lib/server/server.ts";
import { putSnapshot } from "#lib/bus/snapshots.ts";
import type { ServiceModule } from "#lib/process/service-module.ts";
import type { FlagsDeps } from "./access.ts";
import { type ChangeFeed, createChangeFeed } from "./changes/feed.ts";
import { createChangeService } from "./changes/service.ts";
import type { ProjectDirectory } from "#lib/clients/identity-directory.ts";
import { createFlagService } from "./flag-service.ts";
import { migrations } from "./migrations/index.ts";
import type { FlagsDatabase } from "./schema.ts";
import { createSegmentService } from "./segment-service.ts";
import { snapshotVersion } from "./snapshot-version.ts";

/** The KV bucket evaluators watch: key = environment id, value = a SnapshotEnvelope (lib/bus/snapshots.ts). */
export const DEFAULT_SNAPSHOT_BUCKET = "vane_snapshots";
/** The stream of domain events. */
export const DEFAULT_DOMAIN_STREAM = "VANE_DOMAIN";
/** Domain subjects live under this prefix: `<prefix>.flags.config_changed`, `<prefix>.flags.flag_changed`. */
export const DEFAULT_DOMAIN_SUBJECT_PREFIX = "vane.domain";

/** Options for {@link createFlagsModule}. */
export interface FlagsModuleOptions {
  databaseUrl: string;
  /** Postgres connections the module may hold (VANE_DB_POOL_SIZE; default 10). */
  databasePoolSize?: number;
  /** Postgres schema (default "flags"; tests use unique names). */
  schema?: string;
  /** NATS to connect to, or an already connected bus (not drained by the module). */
  nats: { url: string; jetStream?: JetStreamManagement } | { bus: Bus };
  /** Default "vane_snapshots". */
  snapshotBucket?: string;
  /** KV history kept per environment (default 5). */
  snapshotHistory?: number;
  /** Ceiling on one environment's encoded snapshot before compression (VANE_SNAPSHOT_MAX_BYTES, default 64 MiB). */
  maxSnapshotBytes?: number;
  /** Largest value written to the bucket before a snapshot goes in chunks (default: NATS's max_payload less room for headers, at most 8 MiB). */
  snapshotValueBytes?: number;
  /** Default "VANE_DOMAIN" capturing `<domainSubjectPrefix>.>`. */
  domainStream?: string;
  /** Default "vane.domain". */
  domainSubjectPrefix?: string;
  /** JetStream replicas of the stream and bucket (default 1; 3 in production). */
  replicas?: number;
  /** Resolves projects and environments (identity). */
  directory: ProjectDirectory;
  migrate: boolean;
  logger: Logger;
  /** Outbox relay tuning (tests use short intervals). */
  relay?: { pollIntervalMs?: number; retryMinMs?: number; retryMaxMs?: number; maxAttempts?: number };
  /**
   * Readiness fails on the relay's leader while a message has kept failing to publish for this
   * long (default 5 minutes; 0 turns it off): the replica shows the stuck outbox, the others serve.
   */
  outboxStuckAfterMs?: number;
  /** WatchChanges: changes kept for resuming streams (default 10,000) and the heartbeat interval (default 15 s). */
  changes?: { capacity?: number; heartbeatMs?: number };
}

/** The flags module, with handles tests use. */
export interface FlagsModule extends ServiceModule {
  database: Database<FlagsDatabase>;
  relay: OutboxRelay;
  bus: Bus;
  snapshots: KV;
  /** The domain events WatchChanges streams from. */
  changeFeed: ChangeFeed;
}

/**
 * Publishes outbox rows: snapshots as versioned KV writes that never go backwards (in chunks when
 * larger than `maxValueBytes`), events with their id as the message id.
 */
export function createSnapshotPublisher(opts: { bus: Bus; kv: KV; stream: string; maxValueBytes: number }) {
  return async (rec: OutboxRecord): Promise<void> => {
    if (rec.kind === "event") {
      // The PRODUCER span continues the trace of the request that committed the change.
      const parent = propagation.extract(ROOT_CONTEXT, rec.headers);
      await context.with(parent, () =>
        publishEvent(opts.bus.js, rec.target, rec.payload, { msgId: rec.msgId, headers: natsHeaders(), expectStream: opts.stream }),
      );
      return;
    }
    const version = BigInt(rec.msgId);
    for (;;) {
      const current = await opts.kv.get(rec.target);
      if (current && current.operation === "PUT" && current.value.length > 0) {
        // Already there (a re-publish after a crash) or newer (another relay): never regress. The
        // version is read without decoding the payload; an unreadable value is overwritten.
        const stored = snapshotVersion(current.value);
        if (stored !== undefined && stored >= version) return;
      }
      try {
        await putSnapshot(opts.kv, rec.target, rec.payload, { maxValueBytes: opts.maxValueBytes, previousSeq: current ? current.revision : 0 });
        return;
      } catch (err) {
        // Someone wrote in between: look again.
        if (!/wrong last sequence/i.test(String((err as Error).message))) throw err;
      }
    }
  };
}

/** Why readiness fails for a message that has kept failing to publish for `afterMs` or more; undefined otherwise. */
export function stuckOutboxReason(stuck: StuckOutboxRow | undefined, afterMs: number): string | undefined {
  if (!stuck || afterMs <= 0 || stuck.ageSeconds * 1000 < afterMs) return undefined;
  return (
    `outbox message ${stuck.id} (${stuck.kind} ${stuck.target}) ${stuck.parked ? "is parked" : "keeps failing"} after ${stuck.attempts} publish attempts, ` +
    `${Math.round(stuck.ageSeconds)} s old: ${stuck.lastError} (runbook: docs/operations.md, "Outbox message stuck")`
  );
}

/** The snapshot bucket's value limit (a snapshot larger than one value is written in chunks). */
export const BUCKET_MAX_VALUE_BYTES = 8 << 20;
/** The default ceiling on one environment's encoded snapshot, before compression. */
export const DEFAULT_MAX_SNAPSHOT_BYTES = 64 << 20;
/** Room kept under NATS's max_payload for a KV write's headers. */
const HEADER_ROOM = 4096;

/** Creates and starts the flags service's parts. */
export async function createFlagsModule(opts: FlagsModuleOptions): Promise<FlagsModule> {
  const logger = opts.logger.child({ service: "flags" });
  const schema = opts.schema ?? "flags";
  const database = await createDatabase<FlagsDatabase>({ url: opts.databaseUrl, schema, logger, poolSize: opts.databasePoolSize });
  let ownBus: Bus | undefined;
  try {
    if (opts.migrate) await migrateToLatest(database.db, migrations, { schema, logger });
    const bus =
      "bus" in opts.nats ? opts.nats.bus : (ownBus = await connectBus({ servers: opts.nats.url, name: "flags", logger, jetStream: opts.nats.jetStream }));
    const stream = opts.domainStream ?? DEFAULT_DOMAIN_STREAM;
    const prefix = opts.domainSubjectPrefix ?? DEFAULT_DOMAIN_SUBJECT_PREFIX;
    await ensureStream(bus.jsm, {
      name: stream,
      subjects: [`${prefix}.>`],
      maxAgeMs: 7 * 86_400_000,
      duplicateWindowMs: 10 * 60_000,
      replicas: opts.replicas ?? 1,
      description: "Vane domain events",
      manage: bus.manageJetStream,
    });
    const snapshots = await ensureKv(bus.kvm, {
      bucket: opts.snapshotBucket ?? DEFAULT_SNAPSHOT_BUCKET,
      history: opts.snapshotHistory ?? 5,
      replicas: opts.replicas ?? 1,
      maxValueSize: BUCKET_MAX_VALUE_BYTES,
      description: "Vane environment snapshots (key: environment id)",
      manage: bus.manageJetStream,
    });
    const maxPayload = bus.nc.info?.max_payload ?? 1 << 20;
    const maxValueBytes = Math.min(BUCKET_MAX_VALUE_BYTES, maxPayload - HEADER_ROOM, opts.snapshotValueBytes ?? Infinity);
    const channel = `${schema}_outbox`;
    const relay = createOutboxRelay({
      pool: database.pool,
      channel,
      lockName: `vane:${schema}:outbox`,
      publish: createSnapshotPublisher({ bus, kv: snapshots, stream, maxValueBytes }),
      logger: logger.child({ component: "outbox" }),
      name: `${schema}.outbox`,
      ...opts.relay,
    });
    const deps: FlagsDeps = {
      db: database.db,
      directory: opts.directory,
      targets: {
        configChangedSubject: `${prefix}.flags.config_changed`,
        flagChangedSubject: `${prefix}.flags.flag_changed`,
        segmentChangedSubject: `${prefix}.flags.segment_changed`,
        channel,
        maxSnapshotBytes: opts.maxSnapshotBytes ?? DEFAULT_MAX_SNAPSHOT_BYTES,
      },
    };
    const changeFeed = createChangeFeed({ stream, subjectPrefix: prefix, capacity: opts.changes?.capacity, logger });
    changeFeed.attach(bus);
    return {
      name: "flags",
      database,
      relay,
      bus,
      snapshots,
      changeFeed,
      services: [
        serve(FlagService, createFlagService(deps)),
        serve(SegmentService, createSegmentService(deps)),
        serve(ChangeService, createChangeService(deps, changeFeed, { heartbeatMs: opts.changes?.heartbeatMs })),
      ],
      healthChecks: {
        postgres: (signal) => database.ping(signal),
        nats: async () => {
          if (bus.status() !== "connected") throw new Error(`NATS is ${bus.status()}`);
        },
        outbox: async () => stuckOutboxReason(relay.stuck(), opts.outboxStuckAfterMs ?? 5 * 60_000),
      },
      async stop() {
        await changeFeed.stop();
        await relay.stop();
        await ownBus?.drain();
        await database.destroy();
      },
    };
  } catch (err) {
    await ownBus?.drain().catch(() => undefined);
    await database.destroy();
    throw err;
  }
}
