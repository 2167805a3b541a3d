/**
 * Event pipeline benchmark: events/s from Track (collector) to committed aggregates, with 1
 * analytics replica on the one events stream and with 2 replicas on 2 partition streams, beside
 * the raw JetStream publish rate measured in the same round as the reference; and the replicas
 * alone draining a backlog of the same size (what partitions change). Each round checks that
 * nothing was lost or counted twice. Several rounds; ratios per round, min / median / max.
 *
 *   npm run bench:pipeline [-- --events 60000] [--units 20000] [--batch 2000] [--concurrency 8] [--runs 3]
 *
 * Replicas are child processes (services/analytics/test/pipeline-child.ts, the crash test's
 * child); the collector and the load generator share this process. Uses VANE_TEST_DATABASE_URL /
 * VANE_TEST_NATS_URL (defaults: local Postgres and NATS), in its own schemas and streams, removed
 * afterwards. Prints a JSON summary.
 */
import { type ChildProcess, spawn } from "node:child_process";
import { randomUUID } from "node:crypto";
import os from "node:os";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";
import { create, toBinary } from "@bufbuild/protobuf";
import { timestampNow } from "@bufbuild/protobuf/wkt";
import { createClient } from "@connectrpc/connect";
import { createGrpcTransport } from "@connectrpc/connect-node";
import { sql } from "kysely";
import { EventService } from "#gen/vane/events/v1/event_service_pb.js";
import { EventEnvelopeSchema } from "#gen/vane/events/v1/events_pb.js";
import { type Bus, connectBus, ensureStream } from "#lib/bus/bus.ts";
import { eventsLayout } from "#lib/bus/partitions.ts";
import { eventsStream, eventsSubjectPrefix } from "#lib/bus/streams.ts";
import { createEnvReader } from "#lib/process/config.ts";
import { createDatabase } from "#lib/data/db.ts";
import { migrateToLatest } from "#lib/data/migrations.ts";
import { readCommonConfig } from "#lib/process/service-config.ts";
import { startModules } from "#lib/process/service-module.ts";
import { createTestLogger, deleteStreams, dropSchema, testDatabaseUrl, testNatsUrl, uniqueName } from "#test/support/harness.ts";
import { createTestTokens } from "#test/support/tokens.ts";
import { createCollectorModule } from "../../services/collector/module.ts";
import { migrations } from "../../services/analytics/migrations/index.ts";
import type { AnalyticsDatabase } from "../../services/analytics/schema.ts";

const { values } = parseArgs({
  options: {
    events: { type: "string", default: "60000" },
    units: { type: "string", default: "20000" },
    batch: { type: "string", default: "2000" },
    concurrency: { type: "string", default: "8" },
    runs: { type: "string", default: "3" },
  },
});
const N = Number(values.events);
const UNITS = Number(values.units);
const BATCH = Number(values.batch);
const CONCURRENCY = Number(values.concurrency);
const RUNS = Number(values.runs);
const CONFIGS = [
  { name: "1 replica, 1 partition", replicas: 1, partitions: 1 },
  { name: "2 replicas, 2 partitions", replicas: 2, partitions: 2 },
];
const child = fileURLToPath(new URL("../../services/analytics/test/pipeline-child.ts", import.meta.url));
const logger = createTestLogger();
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const org = randomUUID();
const project = randomUUID();
const env = randomUUID();
const units = Array.from({ length: UNITS }, (_, i) => `unit-${i}`);
const tracked = () => Array.from({ length: N }, (_, i) => ({ eventId: randomUUID(), name: "purchase", unitKey: units[(i * 7919) % UNITS], value: 1 }));

function envelope(payload: Parameters<typeof create<typeof EventEnvelopeSchema>>[1] extends infer T ? (T extends { payload?: infer P } ? P : never) : never) {
  const eventId = randomUUID();
  return {
    eventId,
    data: toBinary(
      EventEnvelopeSchema,
      create(EventEnvelopeSchema, { eventId, organizationId: org, projectId: project, environmentId: env, receiveTime: timestampNow(), payload }),
    ),
  };
}

/** Publishes with at most `window` acknowledgements outstanding; returns events/s. */
async function publishAll(bus: Bus, subjectOf: (i: number) => string, items: { eventId: string; data: Uint8Array }[], window = 2000): Promise<number> {
  const started = performance.now();
  let next = 0;
  const worker = async () => {
    while (next < items.length) {
      const i = next++;
      await bus.js.publish(subjectOf(i), items[i].data, { msgID: items[i].eventId });
    }
  };
  await Promise.all(Array.from({ length: window }, worker));
  return items.length / ((performance.now() - started) / 1000);
}

/** Starts a replica (a child process running the partitioned pipeline); `ready` resolves to when it consumes. */
function startReplica(o: Record<string, unknown>): { p: ChildProcess; ready: Promise<number> } {
  const p = spawn(process.execPath, ["--import", "tsx", child, JSON.stringify(o)], { stdio: ["ignore", "pipe", "inherit"] });
  const ready = new Promise<number>((resolve, reject) => {
    p.stdout!.on("data", (d: Buffer) => d.toString().includes("ready") && resolve(performance.now()));
    p.once("exit", (code) => reject(new Error(`replica exited with ${code}`)));
  });
  return { p, ready };
}

/** One configuration in one round: Track-accepted, end-to-end and drain events/s, and the check. */
async function endToEnd(bus: Bus, tokens: Awaited<ReturnType<typeof createTestTokens>>, cfg: (typeof CONFIGS)[number]) {
  const schema = uniqueName("analytics_bench");
  const stream = uniqueName("BENCH_EVENTS").toUpperCase();
  const layout = eventsLayout(stream, cfg.partitions);
  const streams = cfg.partitions > 1 ? layout.partitionStreams.map((s) => s.name) : [stream];
  const database = await createDatabase<AnalyticsDatabase>({ url: testDatabaseUrl, schema, poolSize: 2, logger });
  const replicas: ChildProcess[] = [];
  const consumer = "bench";
  const o = {
    databaseUrl: testDatabaseUrl,
    schema,
    natsUrl: testNatsUrl,
    stream,
    partitions: cfg.partitions,
    consumer,
    batchSize: BATCH,
    ackWaitMs: 30_000,
    crashAfterCommit: 0,
  };
  /** Starts the replicas at once; returns when the first is consuming (the others join as they come up). */
  const startReplicas = async () => {
    const started = Array.from({ length: cfg.replicas }, () => startReplica(o));
    replicas.push(...started.map((r) => r.p));
    const first = await Promise.race(started.map((r) => r.ready));
    await Promise.all(started.map((r) => r.ready));
    return first;
  };
  const stopReplicas = async () => {
    for (const p of replicas.splice(0)) {
      const exited = new Promise((r) => p.once("exit", r));
      p.kill("SIGTERM");
      await exited;
    }
  };
  try {
    await migrateToLatest(database.db, migrations, { schema, logger });
    const metricId = randomUUID();
    const experimentId = randomUUID();
    await database.db
      .insertInto("metrics")
      .values({
        id: metricId,
        organization_id: org,
        project_id: project,
        key: "purchases",
        name: "p",
        event_name: "purchase",
        kind: "count",
        direction: "increase",
      })
      .execute();
    await database.db
      .insertInto("experiments")
      .values({
        id: experimentId,
        organization_id: org,
        project_id: project,
        environment_id: env,
        flag_key: "f",
        key: "x",
        name: "x",
        hypothesis: "",
        variants: JSON.stringify([
          { variant: "a", weight: 1 },
          { variant: "b", weight: 1 },
        ]),
        control_variant: "a",
        metric_keys: JSON.stringify({ primary: ["purchases"], secondary: [], guardrail: [] }),
        metric_ids: JSON.stringify({ purchases: metricId }),
        layer_key: "",
        layer_share_percent: 0,
        shipped_variant: "",
        status: "running",
        start_time: new Date(),
        version: 1,
      })
      .execute();
    const collector = await createCollectorModule({
      bus,
      streamName: stream,
      partitions: cfg.partitions,
      rateLimit: { perSecond: 10_000_000, burst: 10_000_000 },
      publishTimeoutMs: 30_000,
      logger,
    });
    const reader = createEnvReader({ VANE_PORT: "0", VANE_HOST: "127.0.0.1", VANE_DRAIN_DELAY: "0s" });
    const running = await startModules({ config: readCommonConfig(reader), logger, modules: [collector], verifier: tokens.verifier });
    await startReplicas();
    /** Events committed: the pipelines' positions against the streams' last sequences. */
    const caughtUp = async () => {
      const rows = await database.db.selectFrom("consumer_positions").select(["consumer", "stream_seq"]).execute();
      const at = new Map(rows.map((r) => [r.consumer, Number(r.stream_seq)]));
      for (const s of streams) {
        const last = (await bus.jsm.streams.info(s)).state.last_seq;
        if ((at.get(cfg.partitions > 1 ? `${consumer}:${s}` : consumer) ?? 0) < last) return false;
      }
      return true;
    };
    const waitCaughtUp = async (timeoutMs: number) => {
      for (const end = Date.now() + timeoutMs; !(await caughtUp()); await sleep(20)) if (Date.now() > end) throw new Error("the pipeline did not catch up");
      return performance.now();
    };
    try {
      // Exposures first (as evaluators would send them), every unit, alternating arms: not timed.
      const exposures = units.map((unitKey, i) => ({
        unitKey,
        ...envelope({ case: "exposure", value: { flagKey: "f", variant: i % 2 ? "b" : "a", experimentId, unitKey, time: timestampNow() } }),
      }));
      await publishAll(bus, (i) => layout.route(env, exposures[i].unitKey, "exposure").subject, exposures);
      await waitCaughtUp(300_000);

      const token = await tokens.sign({ sub: randomUUID(), org, prj: project, env, kind: "server" }, 3600);
      const client = createClient(
        EventService,
        createGrpcTransport({
          baseUrl: `http://127.0.0.1:${running.port}`,
          interceptors: [(next) => (req) => (req.header.set("authorization", `Bearer ${token}`), next(req))],
        }),
      );
      const events = tracked();
      const started = performance.now();
      let next = 0;
      let sentDone = 0;
      await Promise.all(
        Array.from({ length: CONCURRENCY }, async () => {
          while (next < events.length) {
            const slice = events.slice(next, (next += 1000));
            const r = await client.track({ events: slice });
            if (r.accepted !== slice.length) throw new Error(`Track accepted ${r.accepted} of ${slice.length}`);
          }
        }),
      ).then(() => (sentDone = performance.now()));
      const finished = await waitCaughtUp(600_000);

      // The replicas alone: a backlog of as many events published while they are stopped.
      await stopReplicas();
      const backlog = tracked();
      const backlogItems = backlog.map((e) => envelope({ case: "track", value: e }));
      await publishAll(bus, (i) => layout.route(env, backlog[i].unitKey, "track").subject, backlogItems);
      const drainStarted = await startReplicas();
      const drained = await waitCaughtUp(600_000);
      const { rows } = await sql<{ units: number; count_sum: number }>`
        select sum(units) as units, sum(count_sum) as count_sum from variant_daily where experiment_id = ${experimentId}`.execute(database.db);
      const { rows: processed } = await sql<{ n: string }>`select count(*) as n from processed_events`.execute(database.db);
      const ok = Number(rows[0].count_sum) === 2 * N && Number(rows[0].units) === UNITS && Number(processed[0].n) === 2 * N + UNITS;
      return {
        trackAccepted: Math.round(N / ((sentDone - started) / 1000)),
        endToEnd: Math.round(N / ((finished - started) / 1000)),
        drain: Math.round(N / ((drained - drainStarted) / 1000)),
        verified: { ok, countedEvents: Number(rows[0].count_sum), countedUnits: Number(rows[0].units), processedIds: Number(processed[0].n) },
      };
    } finally {
      await running.stop();
    }
  } finally {
    await stopReplicas();
    await database.destroy();
    await dropSchema(testDatabaseUrl, schema);
    await deleteStreams(bus.nc, [stream, ...layout.partitionStreams.map((s) => s.name)]);
  }
}

const bus = await connectBus({ servers: testNatsUrl, name: "pipeline-bench", logger });
const tokens = await createTestTokens();
const rounds: Record<string, unknown>[] = [];
try {
  for (let run = 0; run < RUNS; run++) {
    // The reference: raw acknowledged JetStream publishes of the same envelopes, 2,000 in flight.
    const rawStream = uniqueName("BENCH_RAW").toUpperCase();
    const rawSpec = eventsStream(rawStream);
    await ensureStream(bus.jsm, rawSpec);
    const rawItems = tracked().map((e) => envelope({ case: "track", value: e }));
    const raw = Math.round(await publishAll(bus, () => `${eventsSubjectPrefix(rawSpec)}.${env}.track`, rawItems));
    await deleteStreams(bus.nc, [rawStream]);
    const round: Record<string, unknown> = { rawPublish: raw };
    for (const cfg of CONFIGS) {
      const r = await endToEnd(bus, tokens, cfg);
      round[cfg.name] = { ...r, ofRaw: Math.round((r.endToEnd / raw) * 1000) / 1000, drainOfRaw: Math.round((r.drain / raw) * 1000) / 1000 };
    }
    rounds.push(round);
    process.stderr.write(`round ${run + 1}: ${JSON.stringify(round)}\n`);
  }
} finally {
  await bus.drain();
}
const spread = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  return { min: s[0], median: s[Math.floor(s.length / 2)], max: s.at(-1) };
};
type Measured = { endToEnd: number; drain: number; ofRaw: number; drainOfRaw: number; verified: { ok: boolean } };
const of = (name: string) => rounds.map((r) => r[name] as Measured);
const ratio = (a: number, b: number) => Math.round((a / b) * 1000) / 1000;
process.stdout.write(
  `${JSON.stringify(
    {
      machine: { nproc: os.cpus().length, cpu: os.cpus()[0]?.model, node: process.version, loadavg: os.loadavg() },
      command: `npm run bench:pipeline -- --events ${N} --units ${UNITS} --batch ${BATCH} --concurrency ${CONCURRENCY} --runs ${RUNS}`,
      rounds,
      summary: {
        rawPublish: spread(rounds.map((r) => r.rawPublish as number)),
        ...Object.fromEntries(
          CONFIGS.map((c) => {
            const m = of(c.name);
            return [
              c.name,
              {
                endToEnd: spread(m.map((x) => x.endToEnd)),
                ofRaw: spread(m.map((x) => x.ofRaw)),
                drain: spread(m.map((x) => x.drain)),
                drainOfRaw: spread(m.map((x) => x.drainOfRaw)),
              },
            ];
          }),
        ),
        twoOverOne: {
          endToEnd: spread(rounds.map((r) => ratio((r[CONFIGS[1].name] as Measured).endToEnd, (r[CONFIGS[0].name] as Measured).endToEnd))),
          drain: spread(rounds.map((r) => ratio((r[CONFIGS[1].name] as Measured).drain, (r[CONFIGS[0].name] as Measured).drain))),
        },
        allVerified: rounds.every((r) => CONFIGS.every((c) => (r[c.name] as Measured).verified.ok)),
      },
    },
    null,
    2,
  )}\n`,
);
