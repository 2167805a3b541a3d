/** The evaluator on its own: `node --import tsx services/evaluator/main.ts`. */
import { createTokenVerifier, remoteKeySet } from "#lib/auth/auth.ts";
import { runClustered } from "#lib/process/cluster.ts";
import { createLogger } from "#lib/process/logger.ts";
import { readConfigOrExit, runMain } from "#lib/process/process.ts";
import { readCommonConfig } from "#lib/process/service-config.ts";
import { startModules } from "#lib/process/service-module.ts";
import { startTelemetry } from "#lib/process/telemetry.ts";
import { readEvaluatorConfig } from "./config.ts";
import { createEvaluatorModule } from "./module.ts";
import { createCachingVerifier } from "./token-cache.ts";

const { common, evaluator, natsToken } = readConfigOrExit(process.env, (env, fail) => {
  const common = readCommonConfig(env);
  const evaluator = readEvaluatorConfig(env);
  if (!common.jwksUrl) fail("VANE_JWKS_URL is required: the evaluator verifies tokens against identity's JWKS");
  if (!common.natsUrl && !evaluator.flagdFile) fail("VANE_NATS_URL (or NATS_URL) is required unless VANE_FLAGD_FILE names a flag file to serve");
  return { common, evaluator, natsToken: env.optional("VANE_NATS_TOKEN") };
});

// VANE_EVALUATOR_PROCESSES > 1: this process forks the workers that run what follows.
runClustered(evaluator.processes, createLogger({ level: common.logLevel }), () =>
  runMain("evaluator", async ({ onStop, useLogger }) => {
    const telemetry = startTelemetry({ serviceName: "evaluator", env: process.env });
    onStop(() => telemetry.shutdown());
    const logger = createLogger({ level: common.logLevel });
    useLogger(logger);
    const identityUrl = evaluator.identityUrl;
    const module = await createEvaluatorModule({
      config: evaluator,
      common,
      logger,
      natsUrl: common.natsUrl,
      natsToken,
      jetStream: common.jetStream,
      identityUrl: identityUrl ? () => identityUrl : undefined,
    });
    onStop(() => module.stop());
    const verifier = createCachingVerifier(createTokenVerifier({ issuer: common.tokenIssuer, keys: remoteKeySet(common.jwksUrl!) }));
    const running = await startModules({ config: common, logger, modules: [module], verifier });
    // All ports drain at once, so shutdown fits one drain period (the pod's grace period).
    onStop(async () => void (await Promise.all([running.server.close(), module.closeFlagdServers()])));
    const ports = await module.startFlagdServers(verifier);
    logger.info({ port: running.port, ...ports }, "evaluator serving");
  }),
);
