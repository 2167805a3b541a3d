/**
 * Assembles the analytics service: database and migrations, the events stream, the pipeline
 * (a durable pull consumer started with the module and stopped in stop()), and the
 * ExperimentService.
 */
import { ExperimentService } from "#gen/vane/experiments/v1/experiment_service_pb.js";
import { type Bus, ensureStream } from "#lib/bus/bus.ts";
import { createDatabase, type Database } from "#lib/data/db.ts";
import type { Logger } from "#lib/process/logger.ts";
import { migrateToLatest } from "#lib/data/migrations.ts";
import { serve } from "#lib/server/server.ts";
import type { ServiceModule } from "#lib/process/service-module.ts";
import { eventsLayout } from "#lib/bus/partitions.ts";
import { type BanditCredentials, type BanditRunner, createBanditRunner } from "./bandit-runner.ts";
import type { ProjectDirectory } from "#lib/clients/identity-directory.ts";
import { createExperimentService } from "./experiment-service.ts";
import type { FlagsClient } from "./flags-client.ts";
import { migrations } from "./migrations/index.ts";
import { type PartitionedPipeline, startPartitionedPipeline } from "./pipeline/partitions.ts";
import type { AnalyticsDatabase } from "./schema.ts";

/** Options for {@link createAnalyticsModule}. */
export interface AnalyticsModuleOptions {
  databaseUrl: string;
  /** Postgres connections the module may hold (VANE_DB_POOL_SIZE; default 10). */
  databasePoolSize?: number;
  /** Postgres schema (default "analytics"; tests use unique names). */
  schema?: string;
  /** The process's NATS connection (not drained by the module). */
  bus: Bus;
  /** The events stream (default VANE_EVENTS; tests use their own). */
  eventsStream?: string;
  /** Replicas of the stream when this process creates it (default 1). */
  replicas?: number;
  /** The durable consumer's name (default "analytics"). */
  consumerName?: string;
  /** `VANE_EVENTS_PARTITIONS` (default 1: the one events stream). */
  partitions?: number;
  /** Pipeline tuning. */
  pipeline?: { batchSize?: number; ackWaitMs?: number; fetchExpiresMs?: number; skewToleranceMs?: number; gapWaitMs?: number; claimIntervalMs?: number };
  /** Calls the flags service on behalf of the caller. */
  flags: FlagsClient;
  /** Resolves projects and environments (identity). */
  directory: ProjectDirectory;
  migrate: boolean;
  logger: Logger;
  /**
   * The Thompson-sampling bandit: how it authenticates to flags (re-weightings are made as this
   * principal and audited), its default interval and schedule. Without it bandits do not run.
   */
  bandit?: { credentials: BanditCredentials; defaultIntervalMs?: number; tickMs?: number };
}

/** The analytics module, with handles tests use. */
export interface AnalyticsModule extends ServiceModule {
  database: Database<AnalyticsDatabase>;
  pipeline: PartitionedPipeline;
  /** Present when bandit credentials were given. */
  bandit?: BanditRunner;
}

/** Creates and starts the analytics service's parts. */
export async function createAnalyticsModule(opts: AnalyticsModuleOptions): Promise<AnalyticsModule> {
  const logger = opts.logger.child({ service: "analytics" });
  const schema = opts.schema ?? "analytics";
  const database = await createDatabase<AnalyticsDatabase>({ url: opts.databaseUrl, schema, logger, poolSize: opts.databasePoolSize });
  try {
    if (opts.migrate) await migrateToLatest(database.db, migrations, { schema, logger });
    const layout = eventsLayout(opts.eventsStream, opts.partitions, opts.replicas);
    for (const spec of [layout.legacy, ...layout.partitionStreams]) await ensureStream(opts.bus.jsm, { ...spec, manage: opts.bus.manageJetStream });
    const pipeline = await startPartitionedPipeline({
      db: database.db,
      bus: opts.bus,
      stream: layout.legacy.name,
      partitions: layout.partitions,
      consumerName: opts.consumerName,
      ...opts.pipeline,
      logger,
    });
    const bandit = opts.bandit ? createBanditRunner({ db: database.db, flags: opts.flags, logger, ...opts.bandit }) : undefined;
    if (bandit) bandit.start();
    else logger.info("no bandit credentials configured: experiments with a bandit keep their weights");
    return {
      name: "analytics",
      database,
      pipeline,
      bandit,
      services: [serve(ExperimentService, createExperimentService({ db: database.db, directory: opts.directory, flags: opts.flags }))],
      healthChecks: {
        postgres: (signal) => database.ping(signal),
        nats: async () => {
          if (opts.bus.status() !== "connected") throw new Error(`NATS is ${opts.bus.status()}`);
        },
      },
      async stop() {
        await bandit?.stop();
        await pipeline.stop();
        await database.destroy();
      },
    };
  } catch (err) {
    await database.destroy();
    throw err;
  }
}
