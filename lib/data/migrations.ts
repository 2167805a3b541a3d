/* eslint-disable @typescript-eslint/no-explicit-any -- migrations run against Kysely<any> by design */
/**
 * Schema migrations with kysely's `Migrator` over a static, per-service list
 * (kysely's `FileMigrationProvider` cannot import `.ts` files under vitest on
 * Node 20, and a static list makes the set of migrations part of the build).
 */
import { Migrator, sql, type Kysely, type Migration, type MigrationResult } from "kysely";
import { pino, type Logger } from "pino";
import { assertSchemaName, createDatabase } from "#lib/data/db.ts";

export type { Migration } from "kysely";

/** Migration names are `YYYY_MM_DD_NNN_snake_case`, so name order is time order. */
const MIGRATION_NAME = /^\d{4}_\d{2}_\d{2}_\d{3}_[a-z0-9_]+$/;

/** Thrown when a migration fails; names the migration and keeps the cause. */
export class MigrationError extends Error {
  override readonly name = "MigrationError";
  /** The failed migration, or undefined when the failure came before any ran (lock, bookkeeping). */
  readonly migrationName: string | undefined;
  /** The migrations that were applied in this run before the failure. */
  readonly applied: readonly string[];

  constructor(schema: string, migrationName: string | undefined, applied: readonly string[], cause: unknown) {
    const what = migrationName ? `migration ${migrationName}` : "migrations";
    const reason = cause instanceof Error ? cause.message : String(cause);
    super(`${what} failed in schema ${schema}: ${reason}`, { cause });
    this.migrationName = migrationName;
    this.applied = applied;
  }
}

/** Options for {@link migrateToLatest} and {@link migrationStatus}. */
export interface MigrateOptions {
  /** The service's schema; holds its tables and kysely's bookkeeping tables. */
  schema: string;
  logger?: Logger;
}

/** Throws unless every name follows the timestamped naming convention. */
export function assertMigrationNames(migrations: Record<string, Migration>): void {
  for (const name of Object.keys(migrations)) {
    if (!MIGRATION_NAME.test(name)) {
      throw new Error(`migration name ${JSON.stringify(name)} must look like 2026_11_23_001_init`);
    }
  }
}

function createMigrator(db: Kysely<any>, migrations: Record<string, Migration>, schema: string): Migrator {
  assertSchemaName(schema);
  assertMigrationNames(migrations);
  return new Migrator({
    db,
    provider: { getMigrations: async () => migrations },
    migrationTableSchema: schema,
  });
}

// Migrations use unqualified names and rely on the connection's search_path
// (set by createDatabase); refuse to run against a handle pointing elsewhere.
async function assertCurrentSchema(db: Kysely<any>, schema: string): Promise<void> {
  const { rows } = await sql<{ schema: string | null }>`select current_schema() as schema`.execute(db);
  const current = rows[0]?.schema ?? null;
  if (current !== schema) {
    throw new Error(
      `migrations for schema ${schema} need a database handle whose search_path starts with it (current: ${current ?? "none"}); use createDatabase({ schema })`,
    );
  }
}

/**
 * Applies every pending migration in name order, in the service's schema,
 * under kysely's migration lock (so replicas starting together are safe).
 * Returns the names applied in this run; throws {@link MigrationError}.
 *
 * `db` must come from `createDatabase({ schema })` for the same schema.
 */
export async function migrateToLatest(db: Kysely<any>, migrations: Record<string, Migration>, options: MigrateOptions): Promise<string[]> {
  const { schema } = options;
  const logger = options.logger ?? pino({ level: "silent" });
  const migrator = createMigrator(db, migrations, schema);
  await assertCurrentSchema(db, schema);
  const { error, results = [] } = await migrator.migrateToLatest();
  const applied = results.filter((r) => r.status === "Success").map((r) => r.migrationName);
  for (const name of applied) logger.info({ schema, migration: name }, "migration applied");
  if (error !== undefined) {
    const failed = results.find((r: MigrationResult) => r.status === "Error")?.migrationName;
    const err = new MigrationError(schema, failed, applied, error);
    logger.error({ err, schema, migration: failed }, "migration failed");
    throw err;
  }
  if (applied.length === 0) logger.debug({ schema }, "migrations up to date");
  return applied;
}

/** One migration's state, as reported by {@link migrationStatus}. */
export interface MigrationState {
  name: string;
  /** When it was applied, or null if pending. */
  executedAt: Date | null;
}

/** Lists every known migration and whether it has been applied, in name order. */
export async function migrationStatus(db: Kysely<any>, migrations: Record<string, Migration>, options: MigrateOptions): Promise<MigrationState[]> {
  const migrator = createMigrator(db, migrations, options.schema);
  const infos = await migrator.getMigrations();
  return infos.map((i) => ({ name: i.name, executedAt: i.executedAt ?? null }));
}

/** What the migrate command needs to know about one service. */
export interface MigrationTarget {
  /** The service's schema. */
  schema: string;
  /** The service's static migration list (`services/<name>/migrations/index.ts`). */
  migrations: Record<string, Migration>;
  /** Overrides the command's database URL for this service (separate credentials per service). */
  databaseUrl?: string;
}

/** Options for {@link runMigrationsCli}. */
export interface MigrationsCliOptions {
  /** Command-line arguments after the script name, e.g. `["identity"]`, `["--status", "all"]`. */
  args: readonly string[];
  /** Every service that has migrations, by service name. */
  targets: Record<string, MigrationTarget>;
  /** Database to migrate, unless a target overrides it. */
  databaseUrl: string;
  logger?: Logger;
  /** Where human-readable output goes (default: stdout). */
  print?: (line: string) => void;
}

const USAGE = "usage: migrate [--status] <service…|all>";

/**
 * The body of `npm run migrate -- <service…|all> [--status]`: migrates (or,
 * with `--status`, lists) each named service's schema to the latest
 * migration. Returns the process exit code (0 ok, 1 failure, 2 usage)
 * instead of exiting, so the caller controls shutdown.
 */
export async function runMigrationsCli(options: MigrationsCliOptions): Promise<number> {
  const print = options.print ?? ((line: string) => process.stdout.write(`${line}\n`));
  const logger = options.logger ?? pino({ level: "silent" });
  const flags = options.args.filter((a) => a.startsWith("-"));
  const names = options.args.filter((a) => !a.startsWith("-"));
  const unknownFlag = flags.find((f) => f !== "--status" && f !== "--help" && f !== "-h");
  const known = Object.keys(options.targets).sort();
  if (flags.includes("--help") || flags.includes("-h")) {
    print(`${USAGE}\nservices: ${known.join(", ")}`);
    return 0;
  }
  if (unknownFlag || names.length === 0) {
    print(`${unknownFlag ? `unknown option ${unknownFlag}\n` : ""}${USAGE}\nservices: ${known.join(", ")}`);
    return 2;
  }
  const selected = names.includes("all") ? known : names;
  const unknown = selected.filter((n) => !(n in options.targets));
  if (unknown.length > 0) {
    print(`unknown service ${unknown.join(", ")}; services: ${known.join(", ")}`);
    return 2;
  }

  const statusOnly = flags.includes("--status");
  for (const service of selected) {
    const target = options.targets[service];
    const log = logger.child({ service });
    let database: Awaited<ReturnType<typeof createDatabase>> | undefined;
    try {
      database = await createDatabase({
        url: target.databaseUrl ?? options.databaseUrl,
        schema: target.schema,
        poolSize: 1,
        statementTimeoutMs: 0, // migrations may legitimately rewrite big tables
        applicationName: `vane-migrate-${service}`,
        logger: log,
      });
      if (statusOnly) {
        for (const m of await migrationStatus(database.db, target.migrations, { schema: target.schema })) {
          print(`${service}\t${m.executedAt ? m.executedAt.toISOString() : "pending"}\t${m.name}`);
        }
      } else {
        const applied = await migrateToLatest(database.db, target.migrations, { schema: target.schema, logger: log });
        print(`${service}: ${applied.length === 0 ? "up to date" : `applied ${applied.join(", ")}`}`);
      }
    } catch (err) {
      print(`${service}: ${err instanceof Error ? err.message : String(err)}`);
      return 1;
    } finally {
      await database?.destroy();
    }
  }
  return 0;
}
