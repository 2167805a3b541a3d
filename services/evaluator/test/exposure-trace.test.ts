/**
 * An exposure is published in a PRODUCER span that joins the trace of the evaluation that made it
 * (the publish happens later, in a batch), and its message carries that trace to analytics.
 */
import { jetstream, jetstreamManager } from "@nats-io/jetstream";
import type { NatsConnection } from "@nats-io/transport-node";
import { SpanKind, trace } from "@opentelemetry/api";
import { InMemorySpanExporter, SimpleSpanProcessor } from "@opentelemetry/sdk-trace-node";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startTelemetry } from "#lib/process/telemetry.ts";
import { connectTestNats, createTestLogger, deleteStreams, eventually, uniqueName } from "#test/support/harness.ts";
import { createExposurePublisher, type ExposureBus } from "../exposures.ts";

const spans = new InMemorySpanExporter();
const telemetry = startTelemetry({ serviceName: "exposure-trace-test", spanProcessors: [new SimpleSpanProcessor(spans)] });

describe("exposure tracing", () => {
  const stream = uniqueName("EXPOSURE_TR").toUpperCase();
  let nc: NatsConnection;
  let bus: ExposureBus;
  beforeAll(async () => {
    nc = await connectTestNats();
    bus = { js: jetstream(nc), jsm: await jetstreamManager(nc), status: () => "connected", maxPayload: () => nc.info?.max_payload };
  });
  afterAll(async () => {
    await deleteStreams(nc, [stream]);
    await nc.close();
    await telemetry.shutdown();
  });

  it("publishes each exposure in a PRODUCER span under the evaluation's span, with the trace in its headers", async () => {
    const p = createExposurePublisher({ logger: createTestLogger(), stream, flushIntervalMs: 20, dedupeSize: 0 });
    p.attach(bus);
    const evaluation = trace.getTracer("test").startActiveSpan("evaluate", (span) => {
      p.record({ organizationId: "o", projectId: "p", environmentId: "env-1", flagKey: "f", variant: "b", experimentId: "x", unitKey: "u1" });
      span.end();
      return span.spanContext();
    });
    await eventually(() => p.stats().published === 1, 10_000, "the exposure published");
    const producer = spans.getFinishedSpans().find((s) => s.kind === SpanKind.PRODUCER);
    expect(producer?.name).toMatch(/^send .*\.env-1\.exposure$/);
    expect(producer?.spanContext().traceId).toBe(evaluation.traceId);
    expect(producer?.parentSpanContext?.spanId).toBe(evaluation.spanId);

    const js = jetstream(nc);
    const msg = await js.streams.get(stream).then((s) => s.getMessage({ seq: 1 }));
    expect(msg?.header?.get("traceparent")).toContain(evaluation.traceId);
    await p.stop();
  });
});
