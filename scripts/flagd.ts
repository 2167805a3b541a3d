/**
 * `npm run flagd -- start --uri file:a.json --uri file:b.json`: Vane's evaluator alone, as a
 * drop-in for `flagd start` with file sources — no Postgres, no NATS, no organization. Serves the
 * files on flagd's ports (evaluation 8013, sync 8015, OFREP 8016, health and metrics 8014),
 * merged as flagd merges them, follows their edits, and lays `--context-value`s over every
 * evaluation's context. docs/flagd.md maps flagd's options to these.
 */
import { resolve } from "node:path";
import { parseArgs } from "node:util";
import { createEnvReader } from "#lib/process/config.ts";
import { createLogger } from "#lib/process/logger.ts";
import { EXIT_USAGE, runMain } from "#lib/process/process.ts";
import { readCommonConfig } from "#lib/process/service-config.ts";
import { startTelemetry } from "#lib/process/telemetry.ts";
import { createHealthRegistry } from "#lib/server/health.ts";
import { createServer } from "#lib/server/server.ts";
import { readEvaluatorConfig } from "../services/evaluator/config.ts";
import { createEvaluatorModule } from "../services/evaluator/module.ts";

// Readiness is reported from the process's start (module loading included), not from here.

const USAGE = `usage: npm run flagd -- [start] --uri FILE [--uri FILE …] [options]
  -f, --uri FILE              a flag file: file:PATH or PATH, relative to this directory (repeat for
                              several; a key in several files takes the last file's definition)
  -p, --port N                flagd evaluation (gRPC, Connect, gRPC-Web)          default 8013
  -g, --sync-port N           flagd sync (in-process providers)                    default 8015
  -r, --ofrep-port N          OFREP (OpenFeature Remote Evaluation Protocol)       default 8016
  -m, --management-port N     /healthz, /readyz, /metrics                          default 8014
  -X, --context-value K=V     a static value laid over every evaluation's context (repeat)
  -C, --cors-origin ORIGIN    an origin browsers may call from (repeat; default *)
      --host ADDRESS          address to listen on                                 default 0.0.0.0
  -h, --help
A port of 0 picks a free one; "off" disables it. Selectors (Flagd-Selector header, the
providers' selector option) pick one file by its flag set id or its path; without one, all.`;

const usage = (problem: string): never => {
  process.stderr.write(`${problem}\n${USAGE}\n`);
  process.exit(EXIT_USAGE);
};

function parseCommandLine(argv: string[]) {
  let parsed;
  try {
    parsed = parseArgs({
      args: argv,
      allowPositionals: true,
      options: {
        uri: { type: "string", short: "f", multiple: true },
        port: { type: "string", short: "p", default: "8013" },
        "sync-port": { type: "string", short: "g", default: "8015" },
        "ofrep-port": { type: "string", short: "r", default: "8016" },
        "management-port": { type: "string", short: "m", default: "8014" },
        "context-value": { type: "string", short: "X", multiple: true },
        "cors-origin": { type: "string", short: "C", multiple: true },
        host: { type: "string", default: "0.0.0.0" },
        help: { type: "boolean", short: "h" },
      },
    });
  } catch (err) {
    return usage((err as Error).message);
  }
  const { values, positionals } = parsed;
  if (values.help) {
    process.stdout.write(`${USAGE}\n`);
    process.exit(0);
  }
  if (positionals.length > 1 || (positionals.length === 1 && positionals[0] !== "start")) usage(`unexpected argument "${positionals.join(" ")}"`);
  const files = (values.uri ?? []).map((uri) => {
    if (/^(https?|grpcs?):\/\//.test(uri) || uri.startsWith("core.openfeature.dev/")) {
      return usage(`--uri ${uri}: only file sources are served in drop-in mode; for flags managed in Vane, run npm start and point providers at it`);
    }
    const path = uri.startsWith("file:") ? uri.slice("file:".length) : uri;
    if (path === "") usage(`--uri ${uri}: names no file`);
    // npm runs scripts in the package's directory; INIT_CWD is where the person typed the command.
    return resolve(process.env.INIT_CWD ?? process.cwd(), path);
  });
  if (files.length === 0) usage("--uri is required: the flag file(s) to serve");
  const port = (name: "port" | "sync-port" | "ofrep-port" | "management-port") => {
    const v = values[name]!;
    if (v.toLowerCase() === "off") return null;
    if (!/^\d+$/.test(v) || Number(v) > 65535) usage(`--${name} must be a port number from 0 to 65535, or off; got "${v}"`);
    return Number(v);
  };
  const context: Record<string, string> = {};
  for (const pair of values["context-value"] ?? []) {
    const eq = pair.indexOf("=");
    if (eq <= 0) usage(`--context-value ${pair}: expected KEY=VALUE`);
    context[pair.slice(0, eq)] = pair.slice(eq + 1);
  }
  return {
    files,
    ports: { evaluation: port("port"), sync: port("sync-port"), ofrep: port("ofrep-port"), management: port("management-port") },
    context,
    corsOrigins: values["cors-origin"] ?? ["*"],
    host: values.host!,
  };
}

const cli = parseCommandLine(process.argv.slice(2));

runMain(
  "vane-flagd",
  async ({ onStop, useLogger }) => {
    const telemetry = startTelemetry({ serviceName: "vane-flagd", env: process.env });
    onStop(() => telemetry.shutdown());
    const reader = createEnvReader({
      VANE_LOG_LEVEL: "warn", // the summary below says what runs where
      VANE_DRAIN_DELAY: "0s",
      ...process.env,
      VANE_HOST: cli.host,
      VANE_CORS_ORIGINS: cli.corsOrigins.join(","),
      VANE_FLAGD_PORT: cli.ports.evaluation === null ? "off" : String(cli.ports.evaluation),
      VANE_FLAGD_SYNC_PORT: cli.ports.sync === null ? "off" : String(cli.ports.sync),
    });
    const common = readCommonConfig(reader);
    const config = readEvaluatorConfig(reader);
    reader.done();
    const logger = createLogger({ level: common.logLevel });
    useLogger(logger);

    const module = await createEvaluatorModule({ config, common, logger, natsUrl: undefined, flagdFiles: cli.files, staticContext: cli.context });
    onStop(() => module.stop());
    const ports = await module.startFlagdServers();
    const ofrepPort = cli.ports.ofrep === null ? undefined : await module.startOpenOfrepServer(cli.ports.ofrep);
    let managementPort: number | undefined;
    if (cli.ports.management !== null) {
      const health = createHealthRegistry();
      health.addCheck("evaluator.snapshots", async () => (module.store.size === 0 ? "no flags loaded" : undefined));
      const management = createServer({
        port: cli.ports.management,
        portSetting: "--management-port",
        host: common.host,
        logger,
        services: [],
        health,
        httpRoutes: { "/metrics": (req, res) => telemetry.metricsHandler(req, res) },
        drainDelayMs: common.drainDelayMs,
        shutdownTimeoutMs: common.shutdownTimeoutMs,
      });
      managementPort = await management.listen();
      onStop(() => management.close());
    }
    const readyMs = Math.round(process.uptime() * 1000);
    logger.info({ files: module.fileSource!.paths, ...ports, ofrepPort, managementPort, readyMs }, "flagd-compatible evaluator ready");
    const line = (what: string, port: number | undefined) => `  ${what.padEnd(24)}${port === undefined ? "off" : `${cli.host}:${port}`}`;
    process.stdout.write(
      [
        `Vane, flagd-compatible: ready in ${readyMs} ms, serving ${cli.files.length === 1 ? "1 file" : `${cli.files.length} files merged`}`,
        ...cli.files.map((f) => `  file                    ${f}`),
        line("evaluation (8013)", ports.evaluationPort),
        line("sync (8015)", ports.syncPort),
        line("OFREP (8016)", ofrepPort),
        line("health, metrics (8014)", managementPort),
        ...Object.entries(cli.context).map(([k, v]) => `  context value           ${k}=${v}`),
        "Press Ctrl-C to stop.",
        "",
      ].join("\n"),
    );
  },
  { stopWithParent: true },
);
