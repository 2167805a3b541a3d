/**
 * Server processes for the evaluator benchmark, one per run, started by remote.bench.ts:
 *   noop   — a @grpc/grpc-js server answering flagd.evaluation.v2 ResolveBoolean with a fixed
 *            response (the baseline: what a gRPC server costs with no work at all);
 *   noop-http <base64> — a `node:http` server that reads each request's body and answers the
 *            given bytes as JSON: remote.bench.ts passes what Vane's main port answered to its
 *            Connect JSON Evaluate (the baseline for Connect JSON: an HTTP/1.1 server doing no work);
 *   vane   — the evaluator (flagd ports and the main port) serving the test fixture from a
 *            flagd file, exactly as `main.ts` assembles it;
 *   vane-h2 — the same flagd.evaluation.v2 implementation on a plain `http2.createServer`
 *            (no dual listener, no interceptors: telemetry, auth, deadline, protovalidate);
 *   vane-dual — that bare handler behind lib/server/dual-listener.ts: vane-dual vs vane-h2 prices the
 *            listener's JS Duplex alone; vane vs vane-dual prices the rest of lib/server/server.ts;
 *   vane-nats <bucket> — the evaluator on snapshots from a KV bucket (propagation.bench.ts), with
 *            its event loop's delay on a side port;
 *   noop-watch — propagation.bench.ts's reference: watch-reference.ts.
 * Prints one JSON line with its ports (and a server-key token for the main port), then serves.
 */
import * as http from "node:http";
import * as http2 from "node:http2";
import { fileURLToPath } from "node:url";
import * as grpc from "@grpc/grpc-js";
import * as protoLoader from "@grpc/proto-loader";
import { connectNodeAdapter } from "@connectrpc/connect-node";
import { createEnvReader } from "#lib/process/config.ts";
import { createDualListener } from "#lib/server/dual-listener.ts";
import { createLogger } from "#lib/process/logger.ts";
import { readCommonConfig } from "#lib/process/service-config.ts";
import { startModules } from "#lib/process/service-module.ts";
import { startTelemetry } from "#lib/process/telemetry.ts";
import * as v2 from "#gen/flagd/evaluation/v2/evaluation_pb.js";
import { readEvaluatorConfig } from "../../services/evaluator/config.ts";
import { createEvaluatorModule } from "../../services/evaluator/module.ts";
import { createCachingVerifier } from "../../services/evaluator/token-cache.ts";
import { createTestTokens } from "../../services/evaluator/test/harness.ts";
import { serveSidePort, startReferenceWatch } from "./watch-reference.ts";

const root = fileURLToPath(new URL("../..", import.meta.url));
const fixture = `${root}services/evaluator/test/flags.fixture.json`;
const mode = process.argv[2];
const say = (o: object) => process.stdout.write(`${JSON.stringify(o)}\n`);

if (mode === "noop-watch") {
  say(await startReferenceWatch());
} else if (mode === "noop") {
  const def = protoLoader.loadSync("flagd/evaluation/v2/evaluation.proto", { includeDirs: [`${root}proto`] });
  const pkg = grpc.loadPackageDefinition(def) as unknown as { flagd: { evaluation: { v2: { Service: { service: grpc.ServiceDefinition } } } } };
  const server = new grpc.Server();
  const answer = { value: true, reason: "TARGETING_MATCH", variant: "a", metadata: { fields: { flagSetId: { stringValue: "fixture" } } } };
  server.addService(pkg.flagd.evaluation.v2.Service.service, {
    resolveBoolean: (_call: unknown, cb: grpc.sendUnaryData<unknown>) => cb(null, answer),
  });
  server.bindAsync("127.0.0.1:0", grpc.ServerCredentials.createInsecure(), (err, port) => {
    if (err) throw err;
    say({ grpc: port });
  });
} else if (mode === "noop-http") {
  // argv[3]: the body to answer, base64 (remote.bench.ts passes the bytes Vane answered).
  const body = Buffer.from(process.argv[3] ?? "", "base64");
  const server = http.createServer((req, res) => {
    req.on("data", () => {});
    req.on("end", () => {
      res.writeHead(200, { "content-type": "application/json", "content-length": body.length });
      res.end(body);
    });
  });
  server.keepAliveTimeout = 60_000;
  server.listen(0, "127.0.0.1", () => say({ http: (server.address() as { port: number }).port }));
} else if (mode === "vane" || mode === "vane-h2" || mode === "vane-dual" || mode === "vane-nats") {
  startTelemetry({ serviceName: "evaluator-bench", env: { OTEL_TRACES_SAMPLER: "always_off" } });
  // vane-nats <bucket>: snapshots from the KV bucket on the local NATS instead of a flagd file.
  const nats = mode === "vane-nats";
  const reader = createEnvReader({
    VANE_PORT: "0",
    VANE_HOST: "127.0.0.1",
    VANE_FLAGD_PORT: "0",
    VANE_FLAGD_SYNC_PORT: "off",
    // BENCH_FLAGD_FILE: another flag file than the test fixture (ofrep.bench.ts: many flags).
    // BENCH_BULK_CACHE_ENTRIES=0: EvaluateAll without its cache of answers (bulk.bench.ts).
    VANE_BULK_CACHE_ENTRIES: process.env.BENCH_BULK_CACHE_ENTRIES ?? "10000",
    ...(nats ? { VANE_SNAPSHOT_BUCKET: process.argv[3] } : { VANE_FLAGD_FILE: process.env.BENCH_FLAGD_FILE ?? fixture }),
  });
  const common = readCommonConfig(reader);
  const config = readEvaluatorConfig(reader);
  const logger = createLogger({ level: "warn" });
  const module = await createEvaluatorModule({ config, common, logger, natsUrl: nats ? (process.env.VANE_NATS_URL ?? "nats://127.0.0.1:4222") : undefined });
  const tokens = await createTestTokens();
  const verifier = createCachingVerifier(tokens.verifier);
  if (mode === "vane" || mode === "vane-nats") {
    const running = await startModules({ config: common, logger, modules: [module], verifier });
    const ports = await module.startFlagdServers(verifier);
    const side = nats ? await serveSidePort() : undefined;
    say({
      main: running.port,
      flagd: ports.evaluationPort,
      side,
      token: await tokens.sign({ sub: "bench", env: nats ? "bench" : "local", kind: "server" }, 3600),
    });
  } else {
    // The module's flagd v2 implementation, served without the dual listener.
    const { createFlagdEvaluationV2 } = await import("../../services/evaluator/flagd/evaluation.ts");
    const { createChangeHub } = await import("../../services/evaluator/snapshots/change-hub.ts");
    const { createFlagEvaluator } = await import("../../services/evaluator/evaluate.ts");
    const { createFlagdAccess } = await import("../../services/evaluator/flagd/access.ts");
    const counters = { evaluation() {}, streamOpened: () => () => {}, snapshotRejected() {} };
    const impl = createFlagdEvaluationV2({
      store: module.store,
      evaluator: createFlagEvaluator(counters, module.exposures),
      hub: createChangeHub(module.store),
      access: createFlagdAccess({ defaultEnvironment: () => "local", auth: "key", isLocal: (id) => id === "local" }),
      keepAliveMs: 20_000,
    });
    const handler = connectNodeAdapter({ routes: (r) => r.service(v2.Service, impl) });
    // vane-dual: the same bare handler behind lib/server/dual-listener.ts, to price the listener alone.
    const server = mode === "vane-dual" ? createDualListener(handler).tcp : http2.createServer(handler);
    server.listen(0, "127.0.0.1", () => say({ flagd: (server.address() as { port: number }).port }));
  }
} else {
  throw new Error(`unknown mode ${mode}`);
}

// Exit cleanly on SIGINT/SIGTERM so `--cpu-prof` can write its profile.
for (const signal of ["SIGINT", "SIGTERM"] as const) process.once(signal, () => process.exit(0));
