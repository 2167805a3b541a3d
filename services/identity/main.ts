/** The identity service on its own: `node --import tsx services/identity/main.ts`. */
import { createTokenVerifier } from "#lib/auth.ts";
import { createLogger } from "#lib/logger.ts";
import { readConfigOrExit, runMain } from "#lib/process.ts";
import { readCommonConfig } from "#lib/service-config.ts";
import { startModules } from "#lib/service-module.ts";
import { startTelemetry } from "#lib/telemetry.ts";
import { readIdentityConfig } from "./config.ts";
import { createIdentityModule } from "./module.ts";

const { common, identity } = readConfigOrExit(process.env, (env, fail) => {
  const common = readCommonConfig(env);
  if (!env.optional("VANE_DATABASE_URL") && !env.optional("DATABASE_URL")) fail("VANE_DATABASE_URL (or DATABASE_URL) is required: identity keeps its data in Postgres");
  return { common, identity: readIdentityConfig(env) };
});

runMain("identity", async ({ onStop, useLogger }) => {
  const telemetry = startTelemetry({ serviceName: "identity", env: process.env });
  onStop(() => telemetry.shutdown());
  const logger = createLogger({ level: common.logLevel });
  useLogger(logger);
  const module = await createIdentityModule({
    databaseUrl: common.databaseUrl!,
    tokenIssuer: common.tokenIssuer,
    migrate: common.migrateOnStart,
    config: identity,
    logger,
  });
  onStop(() => module.stop());
  // Identity holds the signing keys, so it verifies tokens against its own key ring.
  const verifier = createTokenVerifier({ issuer: common.tokenIssuer, keys: module.keys.keySet });
  const running = await startModules({ config: common, logger, modules: [module], verifier });
  // Steps run in reverse: the server drains first, then the module (registered above) stops.
  onStop(() => running.server.close());
});
