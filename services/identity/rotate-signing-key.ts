/**
 * Operator command: rotate identity's token-signing key now.
 *
 *   node --import tsx services/identity/rotate-signing-key.ts [--retire-previous]
 *
 * Without a flag (routine rotation) the new key is published at once and signs once it has been
 * published for VANE_SIGNING_KEY_PUBLISH_AHEAD; the old key then stays published until the tokens
 * it signed have expired, so nobody is logged out. With `--retire-previous` (a compromised key)
 * every older key is revoked: unpublished at once, so the tokens it signed stop verifying, and the
 * new key signs as soon as each replica reloads. Replicas reload every VANE_SIGNING_KEY_REFRESH.
 * Reads VANE_DATABASE_URL (or DATABASE_URL) and VANE_SCHEMA_PREFIX as identity's main.ts does.
 */
import { parseArgs } from "node:util";
import { createDatabase } from "#lib/data/db.ts";
import { createLogger } from "#lib/process/logger.ts";
import { describeError, EXIT_USAGE, readConfigOrExit, readSchemaPrefix } from "#lib/process/process.ts";
import { readCommonConfig } from "#lib/process/service-config.ts";
import { readIdentityConfig } from "./config.ts";
import type { IdentityDatabase } from "./schema.ts";
import { rotateSigningKey } from "./signing-keys.ts";

const USAGE = `usage: node --import tsx services/identity/rotate-signing-key.ts [--retire-previous]
  (no flag)          routine rotation: publish a new key now; identity signs with it after VANE_SIGNING_KEY_PUBLISH_AHEAD
  --retire-previous  a key is compromised: revoke every older key now (its tokens stop verifying) and sign with the new one
Reads VANE_DATABASE_URL (or DATABASE_URL) and VANE_SCHEMA_PREFIX.`;

let retirePrevious = false;
try {
  const { values } = parseArgs({ options: { "retire-previous": { type: "boolean" }, help: { type: "boolean", short: "h" } } });
  if (values.help) {
    process.stdout.write(`${USAGE}\n`);
    process.exit(0);
  }
  retirePrevious = values["retire-previous"] ?? false;
} catch (err) {
  process.stderr.write(`${(err as Error).message}\n${USAGE}\n`);
  process.exit(EXIT_USAGE);
}

const config = readConfigOrExit(process.env, (env, fail) => {
  const common = readCommonConfig(env);
  if (!env.optional("VANE_DATABASE_URL") && !env.optional("DATABASE_URL"))
    fail("VANE_DATABASE_URL (or DATABASE_URL) is required: the Postgres holding identity's signing keys");
  return { common, identity: readIdentityConfig(env), schema: `${readSchemaPrefix(env, fail)}identity` };
});

const logger = createLogger({ level: config.common.logLevel, base: { service: "rotate-signing-key" } });
const seconds = (ms: number) => `${Math.round(ms / 1000)} s`;
const database = await createDatabase<IdentityDatabase>({ url: config.common.databaseUrl!, schema: config.schema, logger, createSchema: false });
try {
  const result = await rotateSigningKey(database.db, { revokePrevious: retirePrevious });
  const { signingKeyRefreshMs: refresh, signingKeyPublishAheadMs: ahead } = config.identity;
  process.stdout.write(`created signing key ${result.kid} in schema ${config.schema}; it is published now\n`);
  if (retirePrevious) {
    process.stdout.write(
      `revoked ${result.revoked.length ? result.revoked.join(", ") : "no other key"}: no longer published; tokens they signed stop verifying at identity within ${seconds(refresh)} (VANE_SIGNING_KEY_REFRESH) and at other services once they refetch the JWKS (at most their JWKS cache age later)\n`,
    );
    process.stdout.write(`identity replicas sign with ${result.kid} within ${seconds(refresh)}\n`);
  } else {
    process.stdout.write(
      `identity replicas sign with it ${seconds(ahead)} from now (VANE_SIGNING_KEY_PUBLISH_AHEAD), within ${seconds(refresh)} more (VANE_SIGNING_KEY_REFRESH); the previous key stays published until its tokens expire\n`,
    );
  }
} catch (err) {
  const code = (err as { code?: string }).code;
  // 42P01/42703: no signing_keys table or revoked_at column yet.
  const hint = code === "42P01" || code === "42703" ? `; is identity's schema "${config.schema}" migrated? run \`npm run migrate -- identity\`` : "";
  process.stderr.write(`rotating the signing key failed: ${describeError(err)}${hint}\n`);
  process.exitCode = 1;
} finally {
  await database.destroy();
}
