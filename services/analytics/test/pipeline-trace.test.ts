/** The pipeline continues the publisher's trace: its CONSUMER span is a child of the producer span from the message headers. */
import { randomUUID } from "node:crypto";
import { create, toBinary } from "@bufbuild/protobuf";
import { timestampNow } from "@bufbuild/protobuf/wkt";
import { SpanKind, trace } from "@opentelemetry/api";
import { InMemorySpanExporter, SimpleSpanProcessor } from "@opentelemetry/sdk-trace-node";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { EventEnvelopeSchema } from "#gen/vane/events/v1/events_pb.js";
import { type Bus, connectBus, ensureStream, publishEvent } from "#lib/bus/bus.ts";
import { createDatabase, type Database } from "#lib/data/db.ts";
import { migrateToLatest } from "#lib/data/migrations.ts";
import { eventsStream, eventsSubjectPrefix } from "#lib/bus/streams.ts";
import { startTelemetry } from "#lib/process/telemetry.ts";
import { createTestLogger, deleteStreams, dropSchema, testDatabaseUrl, testNatsUrl, uniqueName } from "#test/support/harness.ts";
import { migrations } from "../migrations/index.ts";
import { type Pipeline, startPipeline } from "../pipeline/consumer.ts";
import type { AnalyticsDatabase } from "../schema.ts";

const spans = new InMemorySpanExporter();
const telemetry = startTelemetry({ serviceName: "pipeline-trace-test", spanProcessors: [new SimpleSpanProcessor(spans)] });

describe("pipeline tracing", () => {
  const schema = uniqueName("analytics_trace");
  const spec = eventsStream(uniqueName("EVENTS_TR").toUpperCase());
  let database: Database<AnalyticsDatabase>;
  let bus: Bus;
  let pipeline: Pipeline;
  beforeAll(async () => {
    const logger = createTestLogger();
    database = await createDatabase<AnalyticsDatabase>({ url: testDatabaseUrl, schema, logger });
    await migrateToLatest(database.db, migrations, { schema, logger });
    bus = await connectBus({ servers: testNatsUrl, name: "trace-test", logger });
    await ensureStream(bus.jsm, spec);
    pipeline = await startPipeline({ db: database.db, bus, stream: spec.name, consumerName: uniqueName("analytics"), logger });
  });
  afterAll(async () => {
    await pipeline?.stop();
    await database?.destroy();
    await dropSchema(testDatabaseUrl, schema);
    await deleteStreams(bus.nc, [spec.name]);
    await bus.drain();
    await telemetry.shutdown();
  });

  it("processes each message in a CONSUMER span parented by its producer span", async () => {
    const env = randomUUID();
    // The first has no project: skipped (not retried forever), and traced all the same.
    const ids = [randomUUID(), randomUUID()];
    for (const id of ids) {
      const data = toBinary(
        EventEnvelopeSchema,
        create(EventEnvelopeSchema, {
          eventId: id,
          environmentId: env,
          projectId: id === ids[0] ? "" : randomUUID(),
          receiveTime: timestampNow(),
          payload: { case: "track", value: { eventId: id, name: "click", unitKey: "u" } },
        }),
      );
      await trace.getTracer("test").startActiveSpan(`request ${id}`, async (span) => {
        await publishEvent(bus.js, `${eventsSubjectPrefix(spec)}.${env}.track`, data, { msgId: id });
        span.end();
      });
    }
    for (let i = 0; pipeline.stats().processed < 2 && i < 100; i++) await new Promise((r) => setTimeout(r, 100));
    expect(pipeline.stats().processed).toBe(2);
    const finished = spans.getFinishedSpans();
    for (const id of ids) {
      const producer = finished.find((s) => s.kind === SpanKind.PRODUCER && s.attributes["messaging.message.id"] === id)!;
      const consumer = finished.find((s) => s.kind === SpanKind.CONSUMER && s.spanContext().traceId === producer.spanContext().traceId);
      expect(consumer?.name).toBe(`process ${spec.name}`);
      expect(consumer?.parentSpanContext?.spanId).toBe(producer.spanContext().spanId);
    }
  });
});
