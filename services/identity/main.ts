/**
 * The identity service on its own: `node --import tsx services/identity/main.ts`. Its schema is
 * `identity`, behind VANE_SCHEMA_PREFIX as with `npm start`.
 */
import { createTokenVerifier } from "#lib/auth/auth.ts";
import { createLogger } from "#lib/process/logger.ts";
import { readConfigOrExit, readSchemaPrefix, runMain } from "#lib/process/process.ts";
import { readCommonConfig } from "#lib/process/service-config.ts";
import { startModules } from "#lib/process/service-module.ts";
import { startTelemetry } from "#lib/process/telemetry.ts";
import { ensureBootstrap } from "./bootstrap.ts";
import { readIdentityConfig } from "./config.ts";
import { createIdentityModule } from "./module.ts";

const { common, identity, owner, schema } = readConfigOrExit(process.env, (env, fail) => {
  const common = readCommonConfig(env);
  if (!env.optional("VANE_DATABASE_URL") && !env.optional("DATABASE_URL"))
    fail("VANE_DATABASE_URL (or DATABASE_URL) is required: identity keeps its data in Postgres");
  const owner = env.optional("VANE_BOOTSTRAP_OWNER_EMAIL");
  if (owner && !/^[^@\s]+@[^@\s]+$/.test(owner)) fail(`VANE_BOOTSTRAP_OWNER_EMAIL must be an email address, got "${owner}"`);
  return { common, identity: readIdentityConfig(env), owner, schema: `${readSchemaPrefix(env, fail)}identity` };
});

runMain("identity", async ({ onStop, useLogger }) => {
  const telemetry = startTelemetry({ serviceName: "identity", env: process.env });
  onStop(() => telemetry.shutdown());
  const logger = createLogger({ level: common.logLevel });
  useLogger(logger);
  const module = await createIdentityModule({
    databaseUrl: common.databaseUrl!,
    databasePoolSize: common.dbPoolSize,
    schema,
    tokenIssuer: common.tokenIssuer,
    migrate: common.migrateOnStart,
    config: identity,
    logger,
  });
  onStop(() => module.stop());
  if (owner) {
    // A new installation's first owner: the organization "Default" is created once, with them as
    // owner; they sign in through OpenID Connect with this email.
    const result = await ensureBootstrap(module.database.db, { adminEmail: owner });
    if (result.created) logger.info({ owner, organizationId: result.orgId }, "created the first organization");
  }
  // Identity holds the signing keys, so it verifies tokens against its own key ring.
  const verifier = createTokenVerifier({ issuer: common.tokenIssuer, keys: module.keys.keySet });
  const running = await startModules({ config: common, logger, modules: [module], verifier });
  // Steps run in reverse: the server drains first, then the module (registered above) stops.
  onStop(() => running.server.close());
});
