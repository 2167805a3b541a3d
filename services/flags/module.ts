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
import { createOutboxRelay, type OutboxRecord, type OutboxRelay } from "#lib/data/outbox.ts";
import { serve } from "#lib/server/server.ts";
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
import { snapshotByteLimit } from "./limits.ts";

/** The KV bucket evaluators watch: key = environment id, value = EnvironmentSnapshot (binary). */
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
  /** Ceiling on one environment's encoded snapshot (VANE_SNAPSHOT_MAX_BYTES, default 8 MiB), further bounded by NATS's max_payload. */
  maxSnapshotBytes?: number;
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

/** Publishes outbox rows: snapshots as versioned KV writes that never go backwards, events with their id as the message id. */
export function createSnapshotPublisher(opts: { bus: Bus; kv: KV; stream: string }) {
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
        await opts.kv.put(rec.target, rec.payload, { previousSeq: current ? current.revision : 0 });
        return;
      } catch (err) {
        // Someone wrote in between: look again.
        if (!/wrong last sequence/i.test(String((err as Error).message))) throw err;
      }
    }
  };
}

/** The snapshot bucket's value limit, and the default ceiling on one snapshot. */
export const DEFAULT_MAX_SNAPSHOT_BYTES = 8 << 20;

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
      maxValueSize: DEFAULT_MAX_SNAPSHOT_BYTES,
      description: "Vane environment snapshots (key: environment id)",
      manage: bus.manageJetStream,
    });
    const channel = `${schema}_outbox`;
    const relay = createOutboxRelay({
      pool: database.pool,
      channel,
      lockName: `vane:${schema}:outbox`,
      publish: createSnapshotPublisher({ bus, kv: snapshots, stream }),
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
        maxSnapshotBytes: snapshotByteLimit(
          Math.min(opts.maxSnapshotBytes ?? DEFAULT_MAX_SNAPSHOT_BYTES, DEFAULT_MAX_SNAPSHOT_BYTES),
          bus.nc.info?.max_payload,
        ),
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
