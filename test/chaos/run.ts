/**
 * A chaos run: the five services as separate processes on a private nats-server (so it can be
 * killed) and on the test Postgres behind a proxy that can refuse or black-hole; a steady mixed
 * load; scripted faults at seeded random points. Then the checks a user relies on:
 * - every event the collector accepted is counted exactly once, and the analytics consumer drains
 *   within its ack wait once the load stops;
 * - every watcher ends on the last write, and no watcher ever saw a version go backwards;
 * - evaluations were served throughout, except while the evaluator itself was down;
 * - no process grew past its memory bound.
 * Used by `npm run chaos` (long) and test/chaos.test.ts (short, in CI).
 */
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fromJson } from "@bufbuild/protobuf";
import { ValueSchema } from "@bufbuild/protobuf/wkt";
import { jetstreamManager } from "@nats-io/jetstream";
import { connect } from "@nats-io/transport-node";
import { sql } from "kysely";
import { pino } from "pino";
import { ExperimentService } from "#gen/vane/experiments/v1/experiment_service_pb.js";
import { Direction, MetricKind } from "#gen/vane/experiments/v1/experiments_pb.js";
import { EvaluationService, Reason } from "#gen/vane/evaluation/v1/evaluation_service_pb.js";
import { FlagService } from "#gen/vane/flags/v1/flag_service_pb.js";
import { FlagType } from "#gen/vane/flags/v1/flags_pb.js";
import { AuthService } from "#gen/vane/identity/v1/auth_service_pb.js";
import { ApiKeyKind } from "#gen/vane/identity/v1/identity_pb.js";
import { IdentityService } from "#gen/vane/identity/v1/identity_service_pb.js";
import { createDatabase } from "#lib/data/db.ts";
import { findNatsServer, freePort, startNatsServer, type StartedNatsServer } from "#dev/local-infra.ts";
import { dropSchema, testDatabaseUrl, uniqueName } from "#test/support/harness.ts";
import { ensureBootstrap } from "../../services/identity/bootstrap.ts";
import type { IdentityDatabase } from "../../services/identity/schema.ts";
import { client, startLoad, type TokenSource } from "./load.ts";
import { startPgProxy } from "./pg-proxy.ts";
import { type ServiceName, serviceProcess, type ServiceProcess } from "./service-process.ts";
import { planFaults, type Fault } from "./faults.ts";

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

export interface ChaosOptions {
  /** How long faults are injected (the load runs a little longer on each side). */
  durationMs: number;
  seed: number;
  /** Upper bound on any service's resident memory. */
  maxRssBytes?: number;
  /** Progress lines (default: none). */
  log?: (line: string) => void;
}

export interface ChaosReport {
  seed: number;
  faults: string[];
  evaluations: number;
  edits: number;
  eventsAccepted: number;
  watchUpdates: number;
  failuresByKind: Record<string, number>;
  /** Seconds from the end of the load to a drained consumer. */
  drainSeconds: number;
  maxRssMb: Record<string, number>;
  /** Empty when every check passed. */
  violations: string[];
}

/** The analytics consumer's ack wait: the drain promise is measured against it. */
const ACK_WAIT_MS = 30_000;
/** After the evaluator is ready again, calls may still fail for this long (connections being re-made). */
const EVALUATOR_GRACE_MS = 2_000;

export async function runChaos(options: ChaosOptions): Promise<ChaosReport> {
  const log = options.log ?? (() => {});
  const maxRss = options.maxRssBytes ?? 768 << 20;
  const dir = await mkdtemp(join(tmpdir(), "vane-chaos-"));
  const prefix = `${uniqueName("chaos")}_`;
  const cleanups: (() => Promise<unknown>)[] = [];
  const violations: string[] = [];
  try {
    const binary = await findNatsServer();
    if (!binary) throw new Error("the chaos suite needs nats-server to run its own (Debian/Ubuntu: apt-get install nats-server)");
    const natsPort = await freePort();
    const natsStore = join(dir, "nats");
    let nats: StartedNatsServer = await startNatsServer({ binary, storeDir: natsStore, port: natsPort });
    cleanups.push(() => nats.stop());
    const proxy = await startPgProxy(testDatabaseUrl);
    cleanups.push(() => proxy.close());

    const ports = Object.fromEntries(
      await Promise.all((["identity", "flags", "evaluator", "collector", "analytics"] as const).map(async (s) => [s, await freePort()])),
    );
    const url = (s: ServiceName) => `http://127.0.0.1:${ports[s]}`;
    const env = {
      VANE_DATABASE_URL: proxy.url,
      VANE_NATS_URL: nats.url,
      VANE_SCHEMA_PREFIX: prefix,
      VANE_JWKS_URL: `${url("identity")}/.well-known/jwks.json`,
      VANE_IDENTITY_URL: url("identity"),
      VANE_FLAGS_URL: url("flags"),
      VANE_LOG_LEVEL: "warn",
      VANE_DRAIN_DELAY: "0s",
      VANE_SHUTDOWN_TIMEOUT: "5s",
      VANE_FLAGD_PORT: "off",
      VANE_FLAGD_SYNC_PORT: "off",
    };
    const services = Object.fromEntries((Object.keys(ports) as ServiceName[]).map((s) => [s, serviceProcess(s, ports[s], env)])) as Record<
      ServiceName,
      ServiceProcess
    >;
    cleanups.push(async () => {
      await Promise.all(Object.values(services).map((s) => s.stop()));
      for (const s of ["identity", "flags", "analytics"]) await dropSchema(testDatabaseUrl, `${prefix}${s}`);
    });

    // Identity first, then the first tenant and its admin key, as `npm start` would make them.
    await services.identity.start();
    const idb = await createDatabase<IdentityDatabase>({ url: testDatabaseUrl, schema: `${prefix}identity`, logger: pino({ level: "silent" }) });
    const boot = await ensureBootstrap(idb.db, { credentialFile: join(dir, "admin-key") });
    await idb.destroy();
    if (!boot.created || !boot.secret) throw new Error("bootstrap did not create the admin key");
    const admin = refreshingToken(url("identity"), boot.secret);
    await admin.ready;
    cleanups.push(async () => admin.stop());
    await Promise.all([services.flags.start(), services.collector.start(), services.analytics.start()]);

    // The tenant's data: a dial flag the load edits, an experiment flag, a metric, a running experiment.
    const identity = client(IdentityService, url("identity"), admin);
    const projectId = (await identity.listProjects({ organizationId: boot.orgId })).projects[0].id;
    const environmentId = (await identity.listEnvironments({ projectId })).environments.find((e) => e.key === "development")!.id;
    const flags = client(FlagService, url("flags"), admin);
    const variants = (keys: string[]) => keys.map((key) => ({ key, value: fromJson(ValueSchema, key) }));
    const dialFlag = "chaos-dial";
    const experimentFlag = "chaos-checkout";
    await flags.createFlag({
      projectId,
      key: dialFlag,
      name: "Dial",
      type: FlagType.STRING,
      variants: variants(["v0", "v1", "v2", "v3", "v4", "v5", "v6", "v7"]),
    });
    await flags.updateFlagEnvironment({ environmentId, flagKey: dialFlag, enabled: true, defaultVariant: "v0" });
    await flags.createFlag({ projectId, key: experimentFlag, name: "Checkout", type: FlagType.STRING, variants: variants(["control", "treatment"]) });
    await flags.updateFlagEnvironment({ environmentId, flagKey: experimentFlag, enabled: true, defaultVariant: "control" });
    const experiments = client(ExperimentService, url("analytics"), admin);
    const eventName = "chaos_click";
    await experiments.createMetric({ projectId, key: "clicks", name: "Clicks", eventName, kind: MetricKind.COUNT, direction: Direction.INCREASE });
    const { experiment } = await experiments.createExperiment({
      projectId,
      environmentId,
      flagKey: experimentFlag,
      key: "chaos",
      name: "Chaos",
      hypothesis: "Nothing is lost",
      variants: [
        { variant: "control", weight: 50 },
        { variant: "treatment", weight: 50 },
      ],
      primaryMetricKeys: ["clicks"],
    });
    await experiments.startExperiment({ id: experiment!.id, reason: "chaos" });
    const { secret: serverKey } = await identity.createApiKey({ environmentId, kind: ApiKeyKind.SERVER, name: "chaos load" });
    const server = refreshingToken(url("identity"), serverKey);
    await server.ready;
    cleanups.push(async () => server.stop());

    await services.evaluator.start();
    const evaluation = client(EvaluationService, url("evaluator"), server);
    await until(
      async () => (await evaluation.evaluate({ flagKey: experimentFlag, context: { targetingKey: "probe" } })).evaluation?.reason === Reason.TARGETING_MATCH,
      30_000,
      "the evaluator serves the experiment",
    );
    log(`up: services on ports ${JSON.stringify(ports)}, nats :${natsPort}, postgres proxy :${proxy.port}`);

    // Load, then faults.
    const load = startLoad(
      {
        flagsUrl: url("flags"),
        evaluatorUrl: url("evaluator"),
        collectorUrl: url("collector"),
        projectId,
        environmentId,
        dialFlag,
        experimentFlag,
        eventName,
        admin,
        server,
      },
      { watchers: 4, evaluators: 3 },
    );
    const memory = sampleMemory(services);
    await sleep(2_000);
    const evaluatorDown: [number, number][] = [];
    const faults = planFaults(options.seed, options.durationMs);
    for (const fault of faults) {
      await sleep(fault.delayMs);
      log(`fault: ${describeFault(fault)}`);
      const at = Date.now();
      switch (fault.kind) {
        case "kill": {
          const s = services[fault.service];
          await s.kill();
          await sleep(fault.downMs);
          await s.start();
          if (fault.service === "evaluator") evaluatorDown.push([at, Date.now() + EVALUATOR_GRACE_MS]);
          break;
        }
        case "nats": {
          await nats.crash();
          await sleep(fault.downMs);
          nats = await startNatsServer({ binary, storeDir: natsStore, port: natsPort });
          break;
        }
        case "postgres": {
          proxy.setMode(fault.mode);
          await sleep(fault.downMs);
          proxy.setMode("pass");
          break;
        }
      }
    }
    await sleep(2_000);

    // Stop writing; every batch in flight is retried until accepted.
    log("faults over: waiting for the last events to be accepted");
    await withTimeout(load.quiesce(), 60_000, "the load's last events were never accepted");
    const quietAt = Date.now();
    const drained = await drainedWithin(nats.url, ACK_WAIT_MS + 5_000);
    const drainSeconds = (Date.now() - quietAt) / 1000;
    if (!drained) violations.push(`the analytics consumer did not drain within ${(ACK_WAIT_MS + 5_000) / 1000} s of the last event`);

    // Watchers end on the last write (read from the flags service), at the evaluator's version.
    const { environments } = await flags.getFlag({ projectId, key: dialFlag });
    const last = environments.find((e) => e.environmentId === environmentId)!.defaultVariant;
    const converged = await until(
      async () => {
        const now = await evaluation.evaluate({ flagKey: dialFlag, context: { targetingKey: "probe" } });
        return now.evaluation?.variant === last && load.record.watched.every((w) => w.dial.at(-1) === last && w.versions.at(-1) === now.version);
      },
      15_000,
      "watchers converge",
    ).then(
      () => true,
      () => false,
    );
    const record = await load.stop();
    const rss = await memory.stop();
    if (!converged) violations.push(`watchers did not all end on the last write (${last}): ended on ${record.watched.map((w) => w.dial.at(-1)).join(", ")}`);
    for (const [i, w] of record.watched.entries()) {
      const back = w.versions.findIndex((v, j) => j > 0 && v < w.versions[j - 1]);
      if (back > 0) violations.push(`watcher ${i} went back from version ${w.versions[back - 1]} to ${w.versions[back]}`);
    }

    // Exactly once, read from analytics' own tables.
    const adb = await createDatabase<Record<string, never>>({ url: testDatabaseUrl, schema: `${prefix}analytics`, logger: pino({ level: "silent" }) });
    const rows = await sql<{
      event_id: string;
    }>`select event_id from unit_events where environment_id = ${environmentId} and event_name = ${eventName}`.execute(adb.db);
    // Each event of an assigned unit is in its unit's total exactly once: after the exposure
    // (count) or before it (the CUPED covariate), wherever the split falls.
    const totals = await sql<{ aggregated: number; events: number }>`
      select (select coalesce(sum(t.count + t.covariate), 0) from unit_metric_totals t join metrics m on m.id = t.metric_id where m.event_name = ${eventName})::float8 as aggregated,
             (select count(*) from unit_events e join assignments a on a.unit_key = e.unit_key and a.environment_id = e.environment_id
               where e.environment_id = ${environmentId} and e.event_name = ${eventName})::float8 as events`.execute(adb.db);
    await adb.destroy();
    const { aggregated, events } = totals.rows[0];
    if (aggregated !== events) violations.push(`the experiment's totals count ${aggregated} events of assigned units, but ${events} were stored`);
    if (events === 0) violations.push("no event of an assigned unit reached the experiment's totals (exposures lost?)");
    const counted = new Map<string, number>();
    for (const r of rows.rows) counted.set(r.event_id, (counted.get(r.event_id) ?? 0) + 1);
    const missing = [...record.accepted].filter((id) => !counted.has(id));
    const twice = [...counted].filter(([, n]) => n > 1).map(([id]) => id);
    const unknown = [...counted.keys()].filter((id) => !record.sent.has(id));
    if (missing.length > 0) violations.push(`${missing.length} accepted events never counted (e.g. ${missing.slice(0, 3).join(", ")})`);
    if (twice.length > 0) violations.push(`${twice.length} events counted more than once (e.g. ${twice.slice(0, 3).join(", ")})`);
    if (unknown.length > 0) violations.push(`${unknown.length} events counted that were never sent`);

    // Evaluations served except while the evaluator itself was down.
    const unexcused = record.failures.evaluations.filter((t) => !evaluatorDown.some(([a, b]) => t >= a && t <= b));
    if (unexcused.length > 0) violations.push(`${unexcused.length} evaluations failed while the evaluator was up`);

    const maxRssMb = Object.fromEntries(Object.entries(rss).map(([s, b]) => [s, Math.round(b / (1 << 20))]));
    for (const [s, b] of Object.entries(rss)) if (b > maxRss) violations.push(`${s} reached ${Math.round(b / (1 << 20))} MB (bound ${maxRss >> 20} MB)`);

    return {
      seed: options.seed,
      faults: faults.map(describeFault),
      evaluations: record.evaluations,
      edits: record.edits,
      eventsAccepted: record.accepted.size,
      watchUpdates: record.watched.reduce((n, w) => n + w.versions.length, 0),
      failuresByKind: Object.fromEntries(record.failures.counts),
      drainSeconds,
      maxRssMb,
      violations,
    };
  } finally {
    for (const c of cleanups.reverse()) await c().catch((err: unknown) => log(`cleanup: ${String(err)}`));
    await rm(dir, { recursive: true, force: true });
  }
}

function describeFault(f: Fault): string {
  if (f.kind === "kill") return `kill -9 ${f.service}, back after ${f.downMs} ms`;
  if (f.kind === "nats") return `kill -9 nats-server, back after ${f.downMs} ms`;
  return `postgres ${f.mode} for ${f.downMs} ms`;
}

/** An access token exchanged from an API key, renewed every minute (and retried while identity is down). */
function refreshingToken(identityUrl: string, apiKey: string): TokenSource & { ready: Promise<void>; stop(): void } {
  const auth = client(AuthService, identityUrl);
  let token = "";
  const exchange = async () => {
    token = (await auth.exchangeApiKey({ apiKey }, { timeoutMs: 5_000 })).accessToken;
  };
  const timer = setInterval(() => void exchange().catch(() => {}), 60_000);
  return { current: () => token, ready: exchange(), stop: () => clearInterval(timer) };
}

/** Largest resident memory of each service, sampled every half second. */
function sampleMemory(services: Record<ServiceName, ServiceProcess>): { stop(): Promise<Record<string, number>> } {
  const max: Record<string, number> = {};
  const timer = setInterval(() => {
    for (const s of Object.values(services))
      void s.rss().then((b) => {
        if (b !== undefined) max[s.name] = Math.max(max[s.name] ?? 0, b);
      });
  }, 500);
  return {
    stop: async () => {
      clearInterval(timer);
      return max;
    },
  };
}

/** Whether the analytics consumer has nothing pending or unacknowledged before `timeoutMs`. */
async function drainedWithin(natsUrl: string, timeoutMs: number): Promise<boolean> {
  const nc = await connect({ servers: natsUrl });
  try {
    const jsm = await jetstreamManager(nc);
    return await until(
      async () => {
        const info = await jsm.consumers.info("VANE_EVENTS", "analytics");
        return info.num_pending === 0 && info.num_ack_pending === 0;
      },
      timeoutMs,
      "drained",
    ).then(
      () => true,
      () => false,
    );
  } finally {
    await nc.close();
  }
}

async function until(check: () => Promise<boolean>, timeoutMs: number, what: string): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (await check().catch(() => false)) return;
    if (Date.now() > deadline) throw new Error(`timed out waiting until ${what}`);
    await sleep(200);
  }
}

function withTimeout<T>(p: Promise<T>, ms: number, message: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  return Promise.race([p, new Promise<T>((_, reject) => (timer = setTimeout(() => reject(new Error(message)), ms)))]).finally(() => clearTimeout(timer));
}
