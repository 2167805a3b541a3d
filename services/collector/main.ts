/** The collector on its own: `node --import tsx services/collector/main.ts`. */
import { remoteKeySet, createTokenVerifier } from "#lib/auth/auth.ts";
import { connectBus } from "#lib/bus/bus.ts";
import { createLogger } from "#lib/process/logger.ts";
import { readConfigOrExit, runMain } from "#lib/process/process.ts";
import { readCommonConfig } from "#lib/process/service-config.ts";
import { startModules } from "#lib/process/service-module.ts";
import { startTelemetry } from "#lib/process/telemetry.ts";
import { createCollectorModule } from "./module.ts";

const { common, rate } = readConfigOrExit(process.env, (env, fail) => {
  const common = readCommonConfig(env);
  if (!common.natsUrl) fail("VANE_NATS_URL (or NATS_URL) is required: events are stored on JetStream");
  if (!common.jwksUrl) fail("VANE_JWKS_URL is required: tokens are verified against identity's JWKS");
  // The burst must hold the largest batch the contract allows (1,000 events), or such a batch
  // would be told to retry forever.
  const rate = { perSecond: env.int("VANE_TRACK_RATE", 2000, { min: 1 }), burst: env.int("VANE_TRACK_BURST", 10_000, { min: 1000 }) };
  return { common, rate };
});

runMain("collector", async ({ onStop, useLogger }) => {
  const telemetry = startTelemetry({ serviceName: "collector", env: process.env });
  onStop(() => telemetry.shutdown());
  const logger = createLogger({ level: common.logLevel });
  useLogger(logger);
  const bus = await connectBus({ servers: common.natsUrl!, name: "collector", logger, jetStream: common.jetStream });
  onStop(() => bus.drain());
  const module = await createCollectorModule({ bus, rateLimit: rate, logger });
  const verifier = createTokenVerifier({ issuer: common.tokenIssuer, keys: remoteKeySet(common.jwksUrl!) });
  const running = await startModules({ config: common, logger, modules: [module], verifier });
  onStop(() => running.server.close());
});
