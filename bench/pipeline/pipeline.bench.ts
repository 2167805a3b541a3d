/**
 * Event pipeline benchmark: events/s from Track (collector) to committed aggregates, with the raw
 * JetStream publish rate measured in the same run as the ceiling, and the consumer's drain rate
 * on a backlog. Verifies at the end that nothing was lost or counted twice.
 *
 *   npm run bench:pipeline [-- --events 100000] [--units 20000] [--batch 2000] [--concurrency 8]
 *
 * The end-to-end and drain rates are also given as a share of the raw publish rate of the same
 * run, which makes runs on a busy or different machine comparable.
 *
 * Uses VANE_TEST_DATABASE_URL / VANE_TEST_NATS_URL (defaults: local Postgres and NATS), in its own
 * schema and streams, removed afterwards. Prints a JSON summary.
 */
import { randomUUID } from "node:crypto";
import os from "node:os";
import { parseArgs } from "node:util";
import { create, toBinary } from "@bufbuild/protobuf";
import { timestampNow } from "@bufbuild/protobuf/wkt";
import { createClient } from "@connectrpc/connect";
import { createGrpcTransport } from "@connectrpc/connect-node";
import { sql } from "kysely";
import { EventService } from "#gen/vane/events/v1/event_service_pb.js";
import { EventEnvelopeSchema } from "#gen/vane/events/v1/events_pb.js";
import { type Bus, connectBus, ensureStream } from "#lib/bus/bus.ts";
import { createEnvReader } from "#lib/process/config.ts";
import { createDatabase } from "#lib/data/db.ts";
import { migrateToLatest } from "#lib/data/migrations.ts";
import { readCommonConfig } from "#lib/process/service-config.ts";
import { startModules } from "#lib/process/service-module.ts";
import { eventsStream, eventsSubjectPrefix } from "#lib/bus/streams.ts";
import { createTestLogger, deleteStreams, dropSchema, testDatabaseUrl, testNatsUrl, uniqueName } from "#test/support/harness.ts";
import { createTestTokens } from "#test/support/tokens.ts";
import { createCollectorModule } from "../../services/collector/module.ts";
import { migrations } from "../../services/analytics/migrations/index.ts";
import { startPipeline } from "../../services/analytics/pipeline/consumer.ts";
import type { AnalyticsDatabase } from "../../services/analytics/schema.ts";

const { values } = parseArgs({
  options: {
    events: { type: "string", default: "100000" },
    units: { type: "string", default: "20000" },
    batch: { type: "string", default: "2000" },
    concurrency: { type: "string", default: "8" },
  },
});
const N = Number(values.events);
const UNITS = Number(values.units);
const BATCH = Number(values.batch);
const CONCURRENCY = Number(values.concurrency);
const logger = createTestLogger();
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const org = randomUUID();
const project = randomUUID();
const env = randomUUID();
const experimentId = randomUUID();
const metricId = randomUUID();

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
async function publishAll(bus: Bus, subject: string, items: { eventId: string; data: Uint8Array }[], window = 2000): Promise<number> {
  const started = performance.now();
  let next = 0;
  const worker = async () => {
    while (next < items.length) {
      const it = items[next++];
      await bus.js.publish(subject, it.data, { msgID: it.eventId });
    }
  };
  await Promise.all(Array.from({ length: window }, worker));
  return items.length / ((performance.now() - started) / 1000);
}

async function waitFor(pipeline: { stats(): { processed: number } }, target: number, timeoutMs: number): Promise<number> {
  const deadline = Date.now() + timeoutMs;
  while (pipeline.stats().processed < target) {
    if (Date.now() > deadline) throw new Error(`pipeline processed ${pipeline.stats().processed} of ${target}`);
    await sleep(20);
  }
  return performance.now();
}

const schema = uniqueName("analytics_bench");
const rawStream = uniqueName("BENCH_RAW").toUpperCase();
const stream = uniqueName("BENCH_EVENTS").toUpperCase();
const drainStream = uniqueName("BENCH_DRAIN").toUpperCase();
const database = await createDatabase<AnalyticsDatabase>({ url: testDatabaseUrl, schema, poolSize: 4, statementTimeoutMs: 0, logger });
const bus = await connectBus({ servers: testNatsUrl, name: "pipeline-bench", logger });
const result: Record<string, unknown> = {
  machine: { nproc: os.cpus().length, cpu: os.cpus()[0]?.model, node: process.version },
  command: `npm run bench:pipeline -- --events ${N} --units ${UNITS} --batch ${BATCH} --concurrency ${CONCURRENCY}`,
};
try {
  await migrateToLatest(database.db, migrations, { schema, logger });
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
  const units = Array.from({ length: UNITS }, (_, i) => `unit-${i}`);
  const tracked = () => Array.from({ length: N }, (_, i) => ({ eventId: randomUUID(), name: "purchase", unitKey: units[(i * 7919) % UNITS], value: 1 }));

  // 1. The ceiling: raw JetStream publishes of the same envelopes, acknowledged.
  const rawSpec = eventsStream(rawStream);
  await ensureStream(bus.jsm, rawSpec);
  const rawItems = tracked().map((e) => envelope({ case: "track", value: e }));
  result.rawPublishPerSecond = Math.round(await publishAll(bus, `${eventsSubjectPrefix(rawSpec)}.${env}.track`, rawItems));

  // 2. End to end: Track → collector → JetStream → pipeline → committed aggregates.
  const spec = eventsStream(stream);
  await ensureStream(bus.jsm, spec);
  const tokens = await createTestTokens();
  const collector = await createCollectorModule({
    bus,
    streamName: stream,
    rateLimit: { perSecond: 10_000_000, burst: 10_000_000 },
    publishTimeoutMs: 30_000,
    logger,
  });
  const reader = createEnvReader({ VANE_PORT: "0", VANE_HOST: "127.0.0.1", VANE_DRAIN_DELAY: "0s" });
  const running = await startModules({ config: readCommonConfig(reader), logger, modules: [collector], verifier: tokens.verifier });
  const pipeline = await startPipeline({ db: database.db, bus, stream, consumerName: "bench", batchSize: BATCH, logger });
  try {
    // Exposures first (as evaluators would send them), every unit, alternating arms.
    const exposures = units.map((unitKey, i) =>
      envelope({ case: "exposure", value: { flagKey: "f", variant: i % 2 ? "b" : "a", experimentId, unitKey, time: timestampNow() } }),
    );
    await publishAll(bus, `${eventsSubjectPrefix(spec)}.${env}.exposure`, exposures);
    await waitFor(pipeline, UNITS, 120_000);

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
    const finished = await waitFor(pipeline, UNITS + N, 600_000);
    result.trackAcceptedPerSecond = Math.round(N / ((sentDone - started) / 1000));
    result.endToEndPerSecond = Math.round(N / ((finished - started) / 1000));

    // Verify: every event applied once.
    const { rows } = await sql<{
      units: number;
      count_sum: number;
    }>`select sum(units) as units, sum(count_sum) as count_sum from variant_daily where experiment_id = ${experimentId}`.execute(database.db);
    const { rows: processed } = await sql<{ n: string }>`select count(*) as n from processed_events`.execute(database.db);
    result.verify = {
      expectedEvents: N,
      countedEvents: Number(rows[0].count_sum),
      expectedUnits: UNITS,
      countedUnits: Number(rows[0].units),
      processedIds: Number(processed[0].n),
      duplicates: pipeline.stats().duplicates,
      orderWaits: pipeline.stats().orderWaits,
    };
    result.ok = Number(rows[0].count_sum) === N && Number(rows[0].units) === UNITS && Number(processed[0].n) === N + UNITS;
  } finally {
    await pipeline.stop();
    await running.stop();
  }

  // 3. The consumer alone, draining a backlog published before it starts.
  const drainSpec = eventsStream(drainStream);
  await ensureStream(bus.jsm, drainSpec);
  await publishAll(
    bus,
    `${eventsSubjectPrefix(drainSpec)}.${env}.track`,
    tracked().map((e) => envelope({ case: "track", value: e })),
  );
  const drainStarted = performance.now();
  const drain = await startPipeline({ db: database.db, bus, stream: drainStream, consumerName: "bench", batchSize: BATCH, logger });
  const drained = await waitFor(drain, N, 600_000);
  await drain.stop();
  result.consumerDrainPerSecond = Math.round(N / ((drained - drainStarted) / 1000));
  const share = (x: unknown) => Math.round((Number(x) / Number(result.rawPublishPerSecond)) * 1000) / 1000;
  result.ofRawPublish = {
    endToEnd: share(result.endToEndPerSecond),
    trackAccepted: share(result.trackAcceptedPerSecond),
    consumerDrain: share(result.consumerDrainPerSecond),
  };
} finally {
  await database.destroy();
  await dropSchema(testDatabaseUrl, schema);
  await deleteStreams(bus.nc, [rawStream, stream, drainStream]);
  await bus.drain();
}
process.stdout.write(`${JSON.stringify(result, null, 2)}\n`);
