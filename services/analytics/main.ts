/** The analytics service on its own: `node --import tsx services/analytics/main.ts`; its schema is `analytics`, behind VANE_SCHEMA_PREFIX as with `npm start`. */
import { createTokenVerifier, remoteKeySet } from "#lib/auth/auth.ts";
import { connectBus } from "#lib/bus/bus.ts";
import { createLogger } from "#lib/process/logger.ts";
import { readConfigOrExit, readSchemaPrefix, runMain } from "#lib/process/process.ts";
import { createClientTracingInterceptor } from "#lib/server/rpc-telemetry.ts";
import { readCommonConfig } from "#lib/process/service-config.ts";
import { startModules } from "#lib/process/service-module.ts";
import { startTelemetry } from "#lib/process/telemetry.ts";
import { readAnalyticsConfig } from "./config.ts";
import { createIdentityDirectory } from "#lib/clients/identity-directory.ts";
import { createRemoteFlagsClient } from "./flags-client.ts";
import { createAnalyticsModule } from "./module.ts";
import { apiKeyBanditCredentials } from "./bandit-runner.ts";

const { common, analytics, banditApiKey, schema } = readConfigOrExit(process.env, (env, fail) => {
  const common = readCommonConfig(env);
  const analytics = readAnalyticsConfig(env);
  if (!common.databaseUrl) fail("VANE_DATABASE_URL (or DATABASE_URL) is required: analytics keeps experiments and aggregates in Postgres");
  if (!common.natsUrl) fail("VANE_NATS_URL (or NATS_URL) is required: analytics consumes events from NATS JetStream");
  if (!common.jwksUrl) fail("VANE_JWKS_URL is required: analytics verifies access tokens against identity's JWKS");
  if (!analytics.identityUrl) fail("VANE_IDENTITY_URL is required: analytics resolves projects and environments through identity");
  if (!analytics.flagsUrl) fail("VANE_FLAGS_URL is required: analytics configures experiment flags through the flags service");
  // Optional: the API key bandits re-weight rollouts with (an admin's personal key, or an admin key: its environment only).
  return { common, analytics, banditApiKey: env.optional("VANE_BANDIT_API_KEY"), schema: `${readSchemaPrefix(env, fail)}analytics` };
});

runMain("analytics", async ({ onStop, useLogger }) => {
  const telemetry = startTelemetry({ serviceName: "analytics", env: process.env });
  onStop(() => telemetry.shutdown());
  const logger = createLogger({ level: common.logLevel });
  useLogger(logger);
  const bus = await connectBus({ servers: common.natsUrl!, name: "analytics", logger, jetStream: common.jetStream });
  onStop(() => bus.drain());
  const interceptors = [createClientTracingInterceptor()];
  const module = await createAnalyticsModule({
    databaseUrl: common.databaseUrl!,
    databasePoolSize: common.dbPoolSize,
    schema,
    bus,
    eventsStream: analytics.eventsStream,
    replicas: analytics.replicas,
    consumerName: analytics.consumerName,
    partitions: analytics.partitions,
    pipeline: { batchSize: analytics.batchSize, skewToleranceMs: analytics.clockSkewMs, gapWaitMs: analytics.gapWaitMs },
    bandit: banditApiKey
      ? {
          credentials: apiKeyBanditCredentials({ identityUrl: analytics.identityUrl!, apiKey: banditApiKey, interceptors }),
          defaultIntervalMs: analytics.banditIntervalSeconds * 1000,
        }
      : undefined,
    flags: createRemoteFlagsClient({ baseUrl: analytics.flagsUrl!, interceptors }),
    directory: createIdentityDirectory({ baseUrl: analytics.identityUrl!, interceptors }),
    migrate: common.migrateOnStart,
    logger,
  });
  onStop(() => module.stop());
  const verifier = createTokenVerifier({ issuer: common.tokenIssuer, keys: remoteKeySet(common.jwksUrl!) });
  const running = await startModules({ config: common, logger, modules: [module], verifier });
  onStop(() => running.server.close());
});
