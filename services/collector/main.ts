/** The collector on its own: `node --import tsx services/collector/main.ts`. */
import { remoteKeySet, createTokenVerifier } from "#lib/auth/auth.ts";
import { connectBus } from "#lib/bus/bus.ts";
import { createLogger } from "#lib/process/logger.ts";
import { readConfigOrExit, runMain } from "#lib/process/process.ts";
import { readCommonConfig } from "#lib/process/service-config.ts";
import { startModules } from "#lib/process/service-module.ts";
import { startTelemetry } from "#lib/process/telemetry.ts";
import { readCollectorConfig } from "./config.ts";
import { createCollectorModule } from "./module.ts";

const { common, collector } = readConfigOrExit(process.env, (env, fail) => {
  const common = readCommonConfig(env);
  if (!common.natsUrl) fail("VANE_NATS_URL (or NATS_URL) is required: events are stored on JetStream");
  if (!common.jwksUrl) fail("VANE_JWKS_URL is required: tokens are verified against identity's JWKS");
  return { common, collector: readCollectorConfig(env) };
});

runMain("collector", async ({ onStop, useLogger }) => {
  const telemetry = startTelemetry({ serviceName: "collector", env: process.env });
  onStop(() => telemetry.shutdown());
  const logger = createLogger({ level: common.logLevel });
  useLogger(logger);
  const bus = await connectBus({ servers: common.natsUrl!, name: "collector", logger, jetStream: common.jetStream });
  onStop(() => bus.drain());
  const module = await createCollectorModule({
    bus,
    streamName: collector.eventsStream,
    rateLimit: collector.rate,
    replicas: collector.replicas,
    partitions: collector.partitions,
    maxInFlight: collector.maxInFlight,
    logger,
  });
  const verifier = createTokenVerifier({ issuer: common.tokenIssuer, keys: remoteKeySet(common.jwksUrl!) });
  const running = await startModules({ config: common, logger, modules: [module], verifier });
  onStop(() => running.server.close());
});
