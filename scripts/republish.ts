/**
 * Republishes an environment's snapshot from the database, for operators (docs/operations.md,
 * "Outbox message parked"):
 *   npm run republish -- <environment id> [reason]
 * Commits a new config version with no change and supersedes the environment's parked outbox
 * messages; the running flags service's relay publishes it. Audited as `environment.republish`
 * by `operator:<user>`. Reads VANE_DATABASE_URL (or DATABASE_URL), VANE_SCHEMA_PREFIX,
 * VANE_DOMAIN_SUBJECT_PREFIX and VANE_SNAPSHOT_MAX_BYTES as the flags service does. The API
 * equivalent is FlagService.RepublishSnapshot.
 */
import { userInfo } from "node:os";
import { create } from "@bufbuild/protobuf";
import { PrincipalSchema } from "#gen/vane/identity/v1/identity_pb.js";
import { createDatabase, withTransaction } from "#lib/data/db.ts";
import { createLogger } from "#lib/process/logger.ts";
import { readConfigOrExit, readSchemaPrefix } from "#lib/process/process.ts";
import { readCommonConfig } from "#lib/process/service-config.ts";
import { readFlagsConfig } from "../services/flags/config.ts";
import { republishEnvironment } from "../services/flags/republish.ts";
import type { FlagsDatabase } from "../services/flags/schema.ts";
import { lockProject } from "../services/flags/store.ts";

const [environmentId, ...reasonWords] = process.argv.slice(2);
const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;
if (!environmentId || !UUID.test(environmentId)) {
  console.error("usage: npm run republish -- <environment id (a UUID)> [reason]");
  process.exit(2);
}
const config = readConfigOrExit(process.env, (env, fail) => {
  const { databaseUrl, logLevel } = readCommonConfig(env);
  if (!databaseUrl) fail("VANE_DATABASE_URL (or DATABASE_URL) is required: the Postgres holding the flags schema");
  return { databaseUrl: databaseUrl ?? "", logLevel, schemaPrefix: readSchemaPrefix(env, fail), flags: readFlagsConfig(env) };
});
const logger = createLogger({ level: config.logLevel, base: { service: "republish" } });
const schema = `${config.schemaPrefix}flags`;
const database = await createDatabase<FlagsDatabase>({ url: config.databaseUrl, schema, logger });
try {
  const scope = await database.db
    .selectFrom("environment_versions")
    .select(["organization_id", "project_id"])
    .where("environment_id", "=", environmentId)
    .executeTakeFirst();
  if (!scope) {
    console.error(`environment ${environmentId} has no configuration in ${schema} yet: nothing to republish`);
    process.exitCode = 1;
  } else {
    const prefix = config.flags.domainSubjectPrefix;
    const targets = {
      configChangedSubject: `${prefix}.flags.config_changed`,
      flagChangedSubject: `${prefix}.flags.flag_changed`,
      segmentChangedSubject: `${prefix}.flags.segment_changed`,
      channel: `${schema}_outbox`,
      maxSnapshotBytes: config.flags.maxSnapshotBytes,
    };
    const operator = create(PrincipalSchema, { subject: `operator:${userInfo().username}` });
    const env = { organizationId: scope.organization_id, projectId: scope.project_id, environmentId };
    const res = await withTransaction(database.db, async (trx) => {
      await lockProject(trx, env.projectId);
      return republishEnvironment(trx, targets, env, operator, reasonWords.join(" ") || "npm run republish");
    });
    console.log(
      `environment ${environmentId}: config version ${res.configVersion} queued for publishing; ${res.supersededParked} parked message(s) superseded; audit entry ${res.auditEntryId}`,
    );
  }
} finally {
  await database.destroy();
}
