import { context, SpanKind, trace } from "@opentelemetry/api";
import { InMemorySpanExporter, SimpleSpanProcessor } from "@opentelemetry/sdk-trace-node";
import { headers } from "@nats-io/transport-node";
import { afterAll, beforeEach, describe, expect, it } from "vitest";
import { contextFromHeaders, injectTraceHeaders, withConsumerSpan } from "#lib/bus/bus-trace.ts";
import { startTelemetry } from "#lib/process/telemetry.ts";

const spans = new InMemorySpanExporter();
const telemetry = startTelemetry({ serviceName: "bus-trace-test", spanProcessors: [new SimpleSpanProcessor(spans)] });
const tracer = trace.getTracer("test");

beforeEach(() => spans.reset());
afterAll(() => telemetry.shutdown());

describe("trace headers", () => {
  it("round-trips the active span context through NATS headers", () => {
    const span = tracer.startSpan("producer");
    const h = context.with(trace.setSpan(context.active(), span), () => injectTraceHeaders(headers()));
    span.end();
    expect(h.get("traceparent")).toMatch(/^00-[0-9a-f]{32}-[0-9a-f]{16}-01$/);
    const remote = trace.getSpanContext(contextFromHeaders(h));
    expect(remote?.traceId).toBe(span.spanContext().traceId);
    expect(remote?.spanId).toBe(span.spanContext().spanId);
    expect(remote?.isRemote).toBe(true);
  });

  it("reads headers written in another casing, and yields no parent without headers", () => {
    const h = headers();
    h.set("Traceparent", "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01");
    expect(trace.getSpanContext(contextFromHeaders(h))?.traceId).toBe("0af7651916cd43dd8448eb211c80319c");
    expect(trace.getSpanContext(contextFromHeaders(undefined))).toBeUndefined();
  });
});

describe("withConsumerSpan", () => {
  it("runs the handler in a CONSUMER span parented by the producer", async () => {
    const h = headers();
    h.set("traceparent", "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01");
    h.set("Nats-Msg-Id", "evt-1");
    const seen = await withConsumerSpan(
      { subject: "vane.test.x", headers: h, data: new Uint8Array(3) },
      "vane.test",
      async () => trace.getActiveSpan()?.spanContext().traceId,
    );
    expect(seen).toBe("0af7651916cd43dd8448eb211c80319c");
    const [span] = spans.getFinishedSpans();
    expect(span.name).toBe("process vane.test");
    expect(span.kind).toBe(SpanKind.CONSUMER);
    expect(span.parentSpanContext?.spanId).toBe("b7ad6b7169203331");
    expect(span.attributes).toMatchObject({
      "messaging.system": "nats",
      "messaging.destination.name": "vane.test.x",
      "messaging.message.id": "evt-1",
      "messaging.message.body.size": 3,
    });
  });

  it("records the error and rethrows", async () => {
    await expect(
      withConsumerSpan({ subject: "s" }, "s", () => {
        throw new Error("bad payload");
      }),
    ).rejects.toThrow("bad payload");
    const [span] = spans.getFinishedSpans();
    expect(span.status.code).toBe(2);
    expect(span.events[0]?.name).toBe("exception");
  });
});
