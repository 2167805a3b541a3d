/**
 * `npm start`: every Vane service in one Node process on one port, on the configured Postgres
 * and NATS, else local ones, else ones it starts itself (data in `.vane/`); creates the first
 * organization and admin credential on a fresh database, and prints what runs where.
 */
import { isAbsolute, join, relative, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";
import { createTokenVerifier } from "#lib/auth/auth.ts";
import { type Bus, connectBus } from "#lib/bus/bus.ts";
import type { EnvReader } from "#lib/process/config.ts";
import { createLogger, type Logger } from "#lib/process/logger.ts";
import { startLocalInfra } from "#dev/local-infra.ts";
import { EXIT_USAGE, readConfigOrExit, readSchemaPrefix, runMain } from "#lib/process/process.ts";
import { type CommonConfig, readCommonConfig } from "#lib/process/service-config.ts";
import { type ServiceModule, startModules } from "#lib/process/service-module.ts";
import { startTelemetry } from "#lib/process/telemetry.ts";
import { type BootstrapResult, DEFAULT_ADMIN_EMAIL, ensureBootstrap } from "../services/identity/bootstrap.ts";
import { readIdentityConfig } from "../services/identity/config.ts";
import { createIdentityModule, type IdentityModule } from "../services/identity/module.ts";
import { createCollectorModule } from "../services/collector/module.ts";
import { createIdentityDirectory } from "#lib/clients/identity-directory.ts";
import { createFlagsModule } from "../services/flags/module.ts";
import { readFlagsConfig } from "../services/flags/config.ts";
import { readAnalyticsConfig } from "../services/analytics/config.ts";
import { readCollectorConfig } from "../services/collector/config.ts";
import { createRemoteFlagsClient } from "../services/analytics/flags-client.ts";
import { createAnalyticsModule } from "../services/analytics/module.ts";
import { signedBanditCredentials } from "../services/analytics/bandit-runner.ts";
import type { KeyRing } from "../services/identity/signing-keys.ts";
import { readEvaluatorConfig } from "../services/evaluator/config.ts";
import { createEvaluatorModule, type EvaluatorModule, type FlagdPorts } from "../services/evaluator/module.ts";
import { buildConsole, consoleDist, consoleStale } from "../console/build.ts";
import { staticAppRoutes } from "#lib/server/static-files.ts";

/** What `npm start` hands each service's module factory. */
interface StartContext {
  config: CommonConfig;
  databaseUrl: string;
  natsUrl: string;
  /** The service's Postgres schema: its name behind VANE_SCHEMA_PREFIX. */
  schema(service: string): string;
  /** The process's one NATS connection, shared by the modules that need it. */
  bus(): Promise<Bus>;
  /** This process's own URL, known once the server listens (for calls between modules). */
  selfUrl(): string;
  /** Identity's key ring, once identity's module exists (the bandit signs its calls with it). */
  identityKeys(): KeyRing;
  logger: Logger;
}

/**
 * Every service `npm start` runs, started in this order and stopped in reverse. An entry reads
 * the service's own settings (all are validated before anything starts) and returns the factory
 * of its module.
 */
const services: ((env: EnvReader) => (ctx: StartContext) => Promise<ServiceModule>)[] = [
  (env) => {
    const config = readIdentityConfig(env);
    return (ctx) =>
      createIdentityModule({
        databaseUrl: ctx.databaseUrl,
        databasePoolSize: ctx.config.dbPoolSize,
        schema: ctx.schema("identity"),
        tokenIssuer: ctx.config.tokenIssuer,
        migrate: ctx.config.migrateOnStart,
        config,
        logger: ctx.logger,
      });
  },
  (env) => {
    const flags = readFlagsConfig(env);
    return async (ctx) =>
      createFlagsModule({
        databaseUrl: ctx.databaseUrl,
        databasePoolSize: ctx.config.dbPoolSize,
        schema: ctx.schema("flags"),
        nats: { bus: await ctx.bus() },
        snapshotBucket: flags.snapshotBucket,
        maxSnapshotBytes: flags.maxSnapshotBytes,
        relay: { maxAttempts: flags.outboxMaxAttempts },
        outboxStuckAfterMs: flags.outboxStuckAfterMs,
        domainStream: flags.domainStream,
        domainSubjectPrefix: flags.domainSubjectPrefix,
        replicas: flags.replicas,
        directory: createIdentityDirectory({ baseUrl: ctx.selfUrl }),
        migrate: ctx.config.migrateOnStart,
        logger: ctx.logger,
      });
  },
  (env) => {
    const collector = readCollectorConfig(env);
    return async (ctx) =>
      createCollectorModule({
        bus: await ctx.bus(),
        streamName: collector.eventsStream,
        rateLimit: collector.rate,
        replicas: collector.replicas,
        partitions: collector.partitions,
        maxInFlight: collector.maxInFlight,
        logger: ctx.logger,
      });
  },
  (env) => {
    const evaluator = readEvaluatorConfig(env);
    return (ctx) => createEvaluatorModule({ config: evaluator, common: ctx.config, logger: ctx.logger, natsUrl: ctx.natsUrl, identityUrl: ctx.selfUrl });
  },
  (env) => {
    const analytics = readAnalyticsConfig(env);
    return async (ctx) =>
      createAnalyticsModule({
        databaseUrl: ctx.databaseUrl,
        databasePoolSize: ctx.config.dbPoolSize,
        schema: ctx.schema("analytics"),
        bus: await ctx.bus(),
        eventsStream: analytics.eventsStream,
        replicas: analytics.replicas,
        consumerName: analytics.consumerName,
        partitions: analytics.partitions,
        pipeline: { batchSize: analytics.batchSize, skewToleranceMs: analytics.clockSkewMs, gapWaitMs: analytics.gapWaitMs },
        // One process: the bandit's calls to flags are signed with identity's own keys.
        bandit: {
          credentials: signedBanditCredentials((claims, ttlMs) => ctx.identityKeys().sign(claims, ttlMs)),
          defaultIntervalMs: analytics.banditIntervalSeconds * 1000,
        },
        flags: createRemoteFlagsClient({ baseUrl: ctx.selfUrl }),
        directory: createIdentityDirectory({ baseUrl: ctx.selfUrl }),
        migrate: ctx.config.migrateOnStart,
        logger: ctx.logger,
      });
  },
];

const USAGE = `usage: npm start [-- --port N] [--host ADDRESS] [--flagd-file PATH]
  --port N            port for Connect, gRPC and gRPC-Web (default: VANE_PORT, else 8080; 0 picks a free one)
  --host ADDRESS      address to listen on (default: VANE_HOST, else 0.0.0.0)
  --flagd-file PATH   serve a flagd flag-definition file as the environment "local" and follow its
                      edits, like flagd's file source (default: VANE_FLAGD_FILE)
flagd-compatible ports: VANE_FLAGD_PORT (8013, evaluation) and VANE_FLAGD_SYNC_PORT (8015, sync); "off" disables one.
Postgres: VANE_DATABASE_URL, else 127.0.0.1:5432 when reachable, else an embedded one (data in .vane/; as root in /var/lib/vane/).
NATS: VANE_NATS_URL, else 127.0.0.1:4222 when reachable, else a nats-server it starts (data in .vane/).
Every other VANE_* setting works as for the services; VANE_LOG_LEVEL defaults to warn here, VANE_DRAIN_DELAY to 1s.`;

const root = fileURLToPath(new URL("..", import.meta.url));
const print = (text = "") => void process.stdout.write(`${text}\n`);

function parseCommandLine(argv: string[]): { port?: string; host?: string; flagdFile?: string } {
  let values;
  try {
    ({ values } = parseArgs({
      args: argv,
      options: { port: { type: "string" }, host: { type: "string" }, "flagd-file": { type: "string" }, help: { type: "boolean", short: "h" } },
    }));
  } catch (err) {
    process.stderr.write(`${(err as Error).message}\n${USAGE}\n`);
    process.exit(EXIT_USAGE);
  }
  if (values.help) {
    print(USAGE);
    process.exit(0);
  }
  if (values.port !== undefined && !(/^\d+$/.test(values.port) && Number(values.port) <= 65535)) {
    process.stderr.write(`--port must be a port number from 0 to 65535, got "${values.port}"\n${USAGE}\n`);
    process.exit(EXIT_USAGE);
  }
  return { port: values.port, host: values.host, flagdFile: values["flagd-file"] };
}

const cli = parseCommandLine(process.argv.slice(2));
const vars = {
  VANE_LOG_LEVEL: "warn", // the summary below says what matters; logs are JSON lines
  // Graceful, yet quick to stop at the terminal: NOT_SERVING for a second, then the drain.
  VANE_DRAIN_DELAY: "1s",
  ...process.env,
  ...(cli.port !== undefined ? { VANE_PORT: cli.port } : {}),
  ...(cli.host !== undefined ? { VANE_HOST: cli.host } : {}),
  // Relative to where the person typed the command (npm runs scripts in the package's directory).
  ...(cli.flagdFile !== undefined ? { VANE_FLAGD_FILE: resolve(process.env.INIT_CWD ?? process.cwd(), cli.flagdFile) } : {}),
};
const { common, schemaPrefix, adminEmail, factories } = readConfigOrExit(vars, (reader, fail) => {
  const adminEmail = reader.string("VANE_ADMIN_EMAIL", DEFAULT_ADMIN_EMAIL);
  if (!/^[^@\s]+@[^@\s]+$/.test(adminEmail)) fail(`VANE_ADMIN_EMAIL must be an email address, got "${adminEmail}"`);
  return {
    common: readCommonConfig(reader),
    schemaPrefix: readSchemaPrefix(reader, fail),
    adminEmail,
    factories: services.map((entry) => entry(reader)),
  };
});

runMain(
  "vane",
  async ({ signal, onStop, useLogger }) => {
    const telemetry = startTelemetry({ serviceName: "vane", env: process.env });
    onStop(() => telemetry.shutdown());
    const logger = createLogger({ level: common.logLevel });
    useLogger(logger);

    print("Starting Vane: every service in one process");
    const infra = await startLocalInfra({ root, databaseUrl: common.databaseUrl, natsUrl: common.natsUrl, logger, print: (line) => print(`  ${line}`) });
    onStop(async () => {
      await infra.stop();
      print("Vane stopped.");
    });
    signal.throwIfAborted();

    const schema = (service: string) => `${schemaPrefix}${service}`;
    let bus: Promise<Bus> | undefined;
    const sharedBus = () => {
      if (!bus) {
        bus = connectBus({ servers: infra.natsUrl, name: "vane", logger });
        onStop(async () => (await bus)?.drain());
      }
      return bus;
    };
    let selfUrl = "";
    const modules: ServiceModule[] = [];
    const ctx: StartContext = {
      config: common,
      databaseUrl: infra.databaseUrl,
      natsUrl: infra.natsUrl,
      schema,
      bus: sharedBus,
      selfUrl: () => selfUrl,
      identityKeys: () => modules.find((m): m is IdentityModule => m.name === "identity")!.keys,
      logger,
    };
    for (const create of factories) {
      const module = await create(ctx);
      onStop(() => module.stop());
      modules.push(module);
      signal.throwIfAborted();
    }

    // The console, served at / on the same port (built first when missing or out of date).
    if (consoleStale()) {
      print("  console: building (esbuild)…");
      await buildConsole();
    }
    const oidcIssuer = process.env.VANE_OIDC_ISSUER;
    const consoleRoutes = staticAppRoutes(consoleDist, oidcIssuer ? [new URL(oidcIssuer).origin] : []);
    if (consoleRoutes) modules.push({ name: "console", services: [], httpRoutes: consoleRoutes, stop: async () => {} });

    // Identity holds the signing keys: every module verifies tokens against its in-process key ring.
    const identity = modules.find((m): m is IdentityModule => m.name === "identity")!;
    const credentialFile = join(root, ".vane", `${schemaPrefix}admin-api-key`);
    const bootstrap = await ensureBootstrap(identity.database.db, { adminEmail, credentialFile });
    const verifier = createTokenVerifier({ issuer: common.tokenIssuer, keys: identity.keys.keySet });
    const running = await startModules({ config: common, logger, modules, verifier });
    const evaluator = modules.find((m): m is EvaluatorModule => m.name === "evaluator")!;
    // Every port drains at once on Ctrl-C.
    onStop(async () => void (await Promise.all([running.server.close(), evaluator.closeFlagdServers()])));
    selfUrl = `http://127.0.0.1:${running.port}`;
    const flagd = await evaluator.startFlagdServers(verifier);

    const host = ["0.0.0.0", "::", ""].includes(common.host) ? "localhost" : common.host.includes(":") ? `[${common.host}]` : common.host;
    const url = `http://${host}:${running.port}`;
    print(
      summary({
        url,
        services: modules.flatMap((m) => m.services.map((s) => s.service.typeName)),
        console: consoleRoutes !== undefined,
        schemas: modules.filter((m) => m.healthChecks?.postgres).map((m) => schema(m.name)),
        bootstrap,
        credentialFile: displayPath(credentialFile),
        flagd,
        flagdFile: evaluator.fileSource ? { path: displayPath(evaluator.fileSource.path), environmentId: evaluator.fileSource.environmentId } : undefined,
      }),
    );
    onStop(() => print("Stopping Vane…"));
  },
  { interactive: true, stopWithParent: true },
);

interface Summary {
  url: string;
  /** The console is served at the URL's root. */
  console: boolean;
  services: string[];
  schemas: string[];
  bootstrap: BootstrapResult;
  credentialFile: string;
  flagd: FlagdPorts;
  flagdFile: { path: string; environmentId: string } | undefined;
}

function summary(s: Summary): string {
  const { url, bootstrap: b } = s;
  const hostOf = new URL(url).hostname;
  const flagdLine = (what: string, port: number | undefined) =>
    port === undefined ? `  ${what.padEnd(26)}off` : `  ${what.padEnd(26)}${hostOf}:${port}   (gRPC h2c, Connect, gRPC-Web)`;
  const lines = [
    "",
    `Vane is running at ${url}`,
    "",
    ...(s.console ? [`  console                   ${url}/`] : []),
    `  Connect, gRPC, gRPC-Web   ${url}   (HTTP/1.1 and HTTP/2 on one port)`,
    `  services                  ${s.services.join(", ")}`,
    `  health                    ${url}/readyz   (gRPC: grpc.health.v1.Health/Check)`,
    `  metrics                   ${url}/metrics`,
    `  JWKS                      ${url}/.well-known/jwks.json`,
    `  Postgres schemas          ${s.schemas.join(", ")}`,
    flagdLine("flagd evaluation (v1, v2)", s.flagd.evaluationPort),
    flagdLine("flagd sync", s.flagd.syncPort),
    ...(s.flagdFile
      ? [
          `  flagd file                ${s.flagdFile.path}   (served and followed as environment "${s.flagdFile.environmentId}", the flagd ports' default; no key needed)`,
        ]
      : []),
    `  flagd providers           set the provider's selector to a server or client API key of the environment (VANE_FLAGD_AUTH=key)`,
    "",
  ];
  if (b.created) {
    lines.push(`Created organization "Default" with project "default" (${b.environments.map((e) => e.key).join(", ")}) and its owner ${b.adminEmail}.`, "");
  }
  if (b.secret === undefined) {
    lines.push(`No admin credential to show: ${"hint" in b ? b.hint : "none was created"}.`, "");
  } else {
    lines.push(
      `Admin credential (owner's personal API key, saved in ${s.credentialFile}):`,
      "",
      `  ${b.secret}`,
      "",
      ...(s.console
        ? ["Sign in to the console with one click (the key stays in the link's fragment, never sent to a server):", "", `  ${url}/#key=${b.secret}`, ""]
        : []),
      "Exchange it for an access token, then list the organization's projects:",
      "",
      `  TOKEN=$(curl -s -H 'content-type: application/json' -d '{"apiKey":"${b.secret}"}' \\`,
      `    ${url}/vane.identity.v1.AuthService/ExchangeApiKey | sed -E 's/.*"accessToken":"([^"]+)".*/\\1/')`,
      `  curl -s -H "authorization: Bearer $TOKEN" -H 'content-type: application/json' -d '{"organizationId":"${b.orgId}"}' \\`,
      `    ${url}/vane.identity.v1.IdentityService/ListProjects`,
      "",
    );
  }
  lines.push(`Logs: ${common.logLevel} and above (set VANE_LOG_LEVEL=info for more). Press Ctrl-C to stop.`);
  return lines.join("\n");
}

function displayPath(path: string): string {
  const rel = relative(process.cwd(), path);
  return rel.startsWith("..") || isAbsolute(rel) ? path : rel;
}
