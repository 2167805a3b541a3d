/**
 * Schema migrations, run before a release rolls out (a Kubernetes Job per service):
 *   npm run migrate -- identity | all [--status]
 *   node --import tsx scripts/migrate.ts identity
 * Reads VANE_DATABASE_URL (or DATABASE_URL); VANE_SCHEMA_PREFIX as `npm start` does.
 */
import { createLogger } from "#lib/process/logger.ts";
import { runMigrationsCli, type Migration } from "#lib/data/migrations.ts";
import { readConfigOrExit, readSchemaPrefix } from "#lib/process/process.ts";
import { readCommonConfig } from "#lib/process/service-config.ts";
import { migrations as analytics } from "../services/analytics/migrations/index.ts";
import { migrations as flags } from "../services/flags/migrations/index.ts";
import { migrations as identity } from "../services/identity/migrations/index.ts";

/** Every service that owns a schema: its schema name (before the prefix) and its migrations. */
const services: Record<string, Record<string, Migration>> = {
  identity,
  flags,
  analytics,
};

const args = process.argv.slice(2);
const wantsUsage = args.length === 0 || args.includes("--help") || args.includes("-h");
const config = readConfigOrExit(process.env, (env, fail) => {
  const { databaseUrl, logLevel } = readCommonConfig(env);
  if (!env.optional("VANE_DATABASE_URL") && !env.optional("DATABASE_URL") && !wantsUsage)
    fail("VANE_DATABASE_URL (or DATABASE_URL) is required: the Postgres to migrate");
  return { databaseUrl: databaseUrl ?? "", logLevel, schemaPrefix: readSchemaPrefix(env, fail) };
});

process.exitCode = await runMigrationsCli({
  args,
  targets: Object.fromEntries(Object.entries(services).map(([name, migrations]) => [name, { schema: `${config.schemaPrefix}${name}`, migrations }])),
  databaseUrl: config.databaseUrl,
  logger: createLogger({ level: config.logLevel, base: { service: "migrate" } }),
});
