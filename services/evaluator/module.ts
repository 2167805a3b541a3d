/**
 * Assembles the evaluator: the snapshot store fed by the KV watch (and optionally a flagd
 * file), vane.evaluation.v1 for the main port, the flagd-compatible servers on their own ports
 * (8013 evaluation, 8015 sync), exposures, metrics and readiness. It serves without NATS: the
 * bus is connected in the background, and what was loaded keeps being served through outages.
 */
import { connectBus, type Bus, type JetStreamManagement } from "#lib/bus/bus.ts";
import * as flagdV1 from "#gen/flagd/evaluation/v1/evaluation_pb.js";
import * as flagdV2 from "#gen/flagd/evaluation/v2/evaluation_pb.js";
import { FlagSyncService } from "#gen/flagd/sync/v1/sync_pb.js";
import { EvaluationService } from "#gen/vane/evaluation/v1/evaluation_service_pb.js";
import type { EvaluationContext } from "#engine";
import type { TokenVerifier } from "#lib/auth/auth.ts";
import { createHealthRegistry, type HealthCheck } from "#lib/server/health.ts";
import type { Logger } from "#lib/process/logger.ts";
import { createRpcMetricsInterceptor, createTracingInterceptor } from "#lib/server/rpc-telemetry.ts";
import { createServer, serve, type ServiceRegistration, type VaneServer } from "#lib/server/server.ts";
import type { CommonConfig } from "#lib/process/service-config.ts";
import type { ServiceModule } from "#lib/process/service-module.ts";
import { createChangeHub } from "./snapshots/change-hub.ts";
import type { EvaluatorConfig } from "./config.ts";
import { createBulkCache, type BulkCache } from "./bulk-cache.ts";
import { createEvaluationService } from "./evaluation-service.ts";
import { createFlagEvaluator } from "./evaluate.ts";
import { createExposurePublisher, type ExposurePublisher } from "./exposures.ts";
import { createFlagdFiles, type FlagdFiles } from "./snapshots/flagd-files.ts";
import { createFlagdAccess, createFlagdAuthInterceptor } from "./flagd/access.ts";
import { createFlagdEvaluationV1, createFlagdEvaluationV2 } from "./flagd/evaluation.ts";
import { createFlagdSyncService } from "./flagd/sync.ts";
import { createWatchFanOut } from "./watch/fan-out.ts";
import { createKvSnapshotSource, type KvSnapshotSource } from "./snapshots/kv-source.ts";
import { createEvaluatorMetrics } from "./metrics.ts";
import { createSnapshotStore, type SnapshotStore } from "./snapshots/store.ts";
import { createFlagdKeys } from "./flagd/keys.ts";
import { createOfrepHandler, OFREP_PREFIX } from "./ofrep.ts";

/**
 * Evaluation answers are small and go to nearby callers: compressing them (Connect's default
 * above 1 KiB, per message and per stream) costs more CPU than it saves, so only really large
 * ones are compressed. Compressed requests are still accepted.
 */
const UNCOMPRESSED_UP_TO = 64 * 1024;

/** Options for {@link createEvaluatorModule}. */
export interface EvaluatorModuleOptions {
  config: EvaluatorConfig;
  /** Shared settings the flagd servers use (host, CORS, deadlines, shutdown). */
  common: Pick<CommonConfig, "host" | "corsOrigins" | "defaultTimeoutMs" | "drainDelayMs" | "shutdownTimeoutMs">;
  logger: Logger;
  /** NATS with JetStream; undefined serves only the flagd file (no snapshots, no exposures). */
  natsUrl: string | undefined;
  natsToken?: string;
  /** VANE_JETSTREAM_MANAGED: "external" verifies the events stream instead of reconciling it. */
  jetStream?: JetStreamManagement;
  natsCredentials?: string;
  /** identity's base URL, to exchange API keys sent as flagd selectors (VANE_FLAGD_AUTH=key). */
  identityUrl?: () => string;
  /** Flag files to serve, merged as flagd merges `--uri`s (drop-in mode); default: VANE_FLAGD_FILE. */
  flagdFiles?: readonly string[];
  /** flagd's `--context-value`: laid over every evaluation's context (drop-in mode). */
  staticContext?: EvaluationContext;
  /** Exposure publisher tuning (tests). */
  exposures?: { capacity?: number; capacityBytes?: number; flushIntervalMs?: number; publishTimeoutMs?: number; dedupeSize?: number; maxAttempts?: number };
}

/** The ports the flagd servers listen on. */
export interface FlagdPorts {
  evaluationPort: number | undefined;
  syncPort: number | undefined;
}

/** The evaluator module, with handles for the entry point and tests. */
export interface EvaluatorModule extends ServiceModule {
  store: SnapshotStore;
  exposures: ExposurePublisher;
  /** EvaluateAll's answers for repeated contexts. */
  bulkCache: BulkCache;
  kvSource: KvSnapshotSource | undefined;
  fileSource: FlagdFiles | undefined;
  /** Resolves once NATS is connected (never, while it is unreachable); undefined without NATS. */
  bus: Promise<Bus> | undefined;
  /**
   * Starts the flagd-compatible servers on `config.flagdPort` / `config.flagdSyncPort`.
   * `verifier` checks the optional bearer tokens (without it, a token is refused).
   */
  startFlagdServers(verifier?: TokenVerifier): Promise<FlagdPorts>;
  /**
   * Drop-in flagd mode: OFREP on its own port as flagd serves it (8016) — no credentials, the
   * files' environments chosen by a `Flagd-Selector` header. Closed with the flagd servers.
   */
  startOpenOfrepServer(port: number): Promise<number>;
  /** Drains and closes the flagd servers (also done by `stop`); run it beside the main server's close. */
  closeFlagdServers(): Promise<void>;
}

/** Creates the evaluator; it starts loading snapshots at once and serves as soon as it is returned. */
export async function createEvaluatorModule(opts: EvaluatorModuleOptions): Promise<EvaluatorModule> {
  const { config } = opts;
  const logger = opts.logger.child({ service: "evaluator" });
  const store = createSnapshotStore({ onListenerError: (err) => logger.error({ err }, "a snapshot listener failed") });
  const hub = createChangeHub(store);
  const exposures = createExposurePublisher({
    logger,
    stream: config.eventsStream,
    partitions: config.eventsPartitions,
    capacity: config.exposureBufferSize,
    capacityBytes: config.exposureBufferBytes,
    ...opts.exposures,
  });
  // The feed reports rejected snapshots to the counters below (called only once running).
  const kvSource: KvSnapshotSource | undefined = opts.natsUrl
    ? createKvSnapshotSource({ bucket: config.snapshotBucket, store, logger, onRejected: (env) => counters.snapshotRejected(env) })
    : undefined;
  const counters = createEvaluatorMetrics({
    store,
    staleSeconds: () => {
      const s = kvSource?.status();
      if (!s || s.live) return 0;
      return s.lastLiveMs === undefined ? 0 : (Date.now() - s.lastLiveMs) / 1000;
    },
    exposures: () => exposures.stats(),
  });
  const evaluator = createFlagEvaluator(counters, exposures, opts.staticContext);
  const watchers = createWatchFanOut({ store, evaluator });
  const servers: VaneServer[] = [];

  let fileSource: FlagdFiles | undefined;
  const files = opts.flagdFiles ?? (config.flagdFile ? [config.flagdFile] : []);
  if (files.length > 0) {
    fileSource = createFlagdFiles({ paths: files, store, logger, environmentId: config.flagdFileEnvironment });
    await fileSource.start();
  }
  // Without NATS the file (or nothing) is all there is; with it, the KV feed says when it caught up.
  if (!kvSource) store.markInitialLoadDone();

  let stopping = false;
  let bus: Promise<Bus> | undefined;
  if (opts.natsUrl) {
    bus = connectBus({ servers: opts.natsUrl, name: "evaluator", logger, token: opts.natsToken, credentials: opts.natsCredentials, jetStream: opts.jetStream });
    bus.then(
      (b) => {
        if (stopping) return void b.drain();
        kvSource?.attach(b);
        exposures.attach({ js: b.js, jsm: b.jsm, status: () => b.status(), manageJetStream: b.manageJetStream, maxPayload: () => b.nc.info?.max_payload });
      },
      (err: unknown) => logger.error({ err }, "connecting to NATS failed: serving only what is loaded"),
    );
  }

  const snapshots: HealthCheck = async () => {
    const feed = kvSource?.status();
    if (store.size === 0) {
      if (config.readyWithoutSnapshots) return;
      if (!kvSource) return "no configuration to serve: no NATS is configured and no flagd file was given";
      // Fully read and empty: this evaluator holds everything there is (a fresh installation
      // with no flag yet), so it can answer truthfully and is ready.
      if (feed?.synced && feed.problem === undefined) return;
      const why = feed?.problem ?? `loading snapshots from ${config.snapshotBucket}`;
      return `no configuration loaded yet, so nothing can be evaluated: ${why}`;
    }
    if (feed && feed.live && !feed.synced) return `loading snapshots from ${config.snapshotBucket} (${store.size} loaded so far)`;
  };

  const access = createFlagdAccess({
    defaultEnvironment: () => config.flagdEnvironment ?? fileSource?.environmentId,
    auth: config.flagdAuth,
    isLocal: (id) => fileSource?.environments.includes(id) ?? false,
    // flagd users select a file by its flag set id or path; both mean the file's environment.
    alias: (name) => fileSource?.resolve(name),
  });
  const flagdDeps = { store, evaluator, hub, access, keepAliveMs: config.flagdKeepAliveMs };
  let ofrep: { verifier: TokenVerifier; handle: ReturnType<typeof createOfrepHandler> } | undefined;
  const bulkCache = createBulkCache({ maxEntries: config.bulkCacheEntries, maxBytes: config.bulkCacheBytes });

  return {
    name: "evaluator",
    store,
    exposures,
    bulkCache,
    kvSource,
    fileSource,
    bus,
    // Evaluation is the hot path: its unary gRPC calls take lib/server/grpc-fast-path.ts.
    services: [
      {
        ...serve(
          EvaluationService,
          createEvaluationService({
            store,
            evaluator,
            watchers,
            onStream: () => counters.streamOpened("vane_watch"),
            bulkCache,
          }),
        ),
        fastUnary: true,
        options: { compressMinBytes: UNCOMPRESSED_UP_TO },
      },
    ],
    // OFREP on the main port: API keys are exchanged at identity (one cache per verifier).
    httpHandlers: [
      {
        prefix: OFREP_PREFIX,
        handle: (req, res, env) => {
          if (ofrep?.verifier !== env.verifier) {
            const keys = opts.identityUrl ? createFlagdKeys({ identityUrl: opts.identityUrl, verifier: env.verifier }) : undefined;
            ofrep = {
              verifier: env.verifier,
              handle: createOfrepHandler({ store, evaluator, verifier: () => env.verifier, keys: () => keys, logger }),
            };
          }
          return ofrep.handle(req, res);
        },
      },
    ],
    healthChecks: { snapshots },
    async startFlagdServers(verifier) {
      const keys = config.flagdAuth === "key" && opts.identityUrl && verifier ? createFlagdKeys({ identityUrl: opts.identityUrl, verifier }) : undefined;
      if (config.flagdAuth === "none")
        logger.warn("VANE_FLAGD_AUTH=none: the flagd ports serve any environment whose id a caller sends; keep them on a trusted network");
      // Only the local files need no key: nothing to say when they are all there is (drop-in mode).
      else if (!keys && opts.natsUrl)
        logger.warn("the flagd ports accept bearer tokens only (and the --flagd-file environment): set VANE_IDENTITY_URL to accept API keys as selectors");
      const health = createHealthRegistry();
      health.addCheck("evaluator.snapshots", snapshots);
      // Connect JSON answers carry zero values, as flagd's do (e.g. "value": false). Needs
      // lib/server/server.ts to pass a registration's `options` to the router.
      const flagdJson = { options: { jsonOptions: { alwaysEmitImplicit: true }, compressMinBytes: UNCOMPRESSED_UP_TO } };
      const hot = { ...flagdJson, fastUnary: true };
      const start = async (port: number, services: ServiceRegistration[], portSetting: string) => {
        const server = createServer({
          port,
          portSetting: `${portSetting} (or "off")`,
          host: opts.common.host,
          logger: logger.child({ port: "flagd" }),
          services,
          health,
          interceptors: [createTracingInterceptor(), createRpcMetricsInterceptor(), createFlagdAuthInterceptor(verifier, keys)],
          corsOrigins: opts.common.corsOrigins,
          defaultTimeoutMs: opts.common.defaultTimeoutMs,
          // flagd providers open their streams with a 10-minute deadline (and may be configured
          // longer); flagd accepts any, so these ports do too.
          maxTimeoutMs: 7 * 86_400_000,
          drainDelayMs: opts.common.drainDelayMs,
          shutdownTimeoutMs: opts.common.shutdownTimeoutMs,
        });
        servers.push(server);
        return server.listen();
      };
      const evaluationPort =
        config.flagdPort === null
          ? undefined
          : await start(
              config.flagdPort,
              [
                Object.assign(serve(flagdV2.Service, createFlagdEvaluationV2({ ...flagdDeps, onStream: () => counters.streamOpened("flagd_events") })), hot),
                Object.assign(serve(flagdV1.Service, createFlagdEvaluationV1({ ...flagdDeps, onStream: () => counters.streamOpened("flagd_events") })), hot),
              ],
              "VANE_FLAGD_PORT",
            );
      const syncPort =
        config.flagdSyncPort === null
          ? undefined
          : await start(
              config.flagdSyncPort,
              [
                Object.assign(
                  serve(
                    FlagSyncService,
                    createFlagdSyncService({
                      store,
                      hub,
                      access,
                      keys,
                      staticContext: opts.staticContext,
                      onStream: () => counters.streamOpened("flagd_sync"),
                    }),
                  ),
                  flagdJson,
                ),
              ],
              "VANE_FLAGD_SYNC_PORT",
            );
      return { evaluationPort, syncPort };
    },
    async startOpenOfrepServer(port) {
      const handle = createOfrepHandler({
        store,
        evaluator,
        verifier: () => undefined,
        keys: () => undefined,
        logger,
        open: (selector) => (selector === undefined ? fileSource?.environmentId : fileSource?.resolve(selector)),
      });
      const health = createHealthRegistry();
      health.addCheck("evaluator.snapshots", snapshots);
      const server = createServer({
        port,
        portSetting: "--ofrep-port",
        host: opts.common.host,
        logger: logger.child({ port: "ofrep" }),
        services: [],
        health,
        corsOrigins: opts.common.corsOrigins,
        drainDelayMs: opts.common.drainDelayMs,
        shutdownTimeoutMs: opts.common.shutdownTimeoutMs,
        httpHandlers: [{ prefix: OFREP_PREFIX, handle }],
      });
      servers.push(server);
      return server.listen();
    },
    async closeFlagdServers() {
      await Promise.all(servers.map((s) => s.close()));
    },
    async stop() {
      stopping = true;
      await Promise.all(servers.map((s) => s.close()));
      fileSource?.stop();
      await kvSource?.stop();
      await exposures.stop();
      counters.stop();
      hub.stop();
      watchers.stop();
      // A bus that never connected has nothing to drain; one that connects later drains itself.
      const connected = await Promise.race([bus, Promise.resolve(undefined)]);
      await connected?.drain();
    },
  };
}
