/** The flags service on its own: `node --import tsx services/flags/main.ts`; its schema is `flags`, behind VANE_SCHEMA_PREFIX as with `npm start`. */
import { createTokenVerifier, remoteKeySet } from "#lib/auth/auth.ts";
import { createLogger } from "#lib/process/logger.ts";
import { readConfigOrExit, readSchemaPrefix, runMain } from "#lib/process/process.ts";
import { createClientTracingInterceptor } from "#lib/server/rpc-telemetry.ts";
import { readCommonConfig } from "#lib/process/service-config.ts";
import { startModules } from "#lib/process/service-module.ts";
import { startTelemetry } from "#lib/process/telemetry.ts";
import { readFlagsConfig } from "./config.ts";
import { createIdentityDirectory } from "#lib/clients/identity-directory.ts";
import { createFlagsModule } from "./module.ts";

const { common, flags, schema } = readConfigOrExit(process.env, (env, fail) => {
  const common = readCommonConfig(env);
  const flags = readFlagsConfig(env);
  if (!common.databaseUrl) fail("VANE_DATABASE_URL (or DATABASE_URL) is required: flags keeps its data in Postgres");
  if (!common.natsUrl) fail("VANE_NATS_URL (or NATS_URL) is required: flags publishes snapshots and events to NATS JetStream");
  if (!common.jwksUrl) fail("VANE_JWKS_URL is required: flags verifies access tokens against identity's JWKS");
  if (!flags.identityUrl) fail("VANE_IDENTITY_URL is required: flags resolves projects and environments through identity");
  return { common, flags, schema: `${readSchemaPrefix(env, fail)}flags` };
});

runMain("flags", async ({ onStop, useLogger }) => {
  const telemetry = startTelemetry({ serviceName: "flags", env: process.env });
  onStop(() => telemetry.shutdown());
  const logger = createLogger({ level: common.logLevel });
  useLogger(logger);
  const module = await createFlagsModule({
    databaseUrl: common.databaseUrl!,
    databasePoolSize: common.dbPoolSize,
    schema,
    nats: { url: common.natsUrl!, jetStream: common.jetStream },
    snapshotBucket: flags.snapshotBucket,
    maxSnapshotBytes: flags.maxSnapshotBytes,
    relay: { maxAttempts: flags.outboxMaxAttempts },
    outboxStuckAfterMs: flags.outboxStuckAfterMs,
    domainStream: flags.domainStream,
    domainSubjectPrefix: flags.domainSubjectPrefix,
    replicas: flags.replicas,
    directory: createIdentityDirectory({ baseUrl: flags.identityUrl!, interceptors: [createClientTracingInterceptor()] }),
    migrate: common.migrateOnStart,
    logger,
  });
  onStop(() => module.stop());
  const verifier = createTokenVerifier({ issuer: common.tokenIssuer, keys: remoteKeySet(common.jwksUrl!) });
  const running = await startModules({ config: common, logger, modules: [module], verifier });
  onStop(() => running.server.close());
});
