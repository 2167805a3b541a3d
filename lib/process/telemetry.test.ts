import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { metrics, propagation, trace } from "@opentelemetry/api";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { getTelemetry, parseKeyValues, startTelemetry } from "#lib/process/telemetry.ts";

// A stand-in OTLP/HTTP collector: records which paths received data.
const received: { path: string; auth: string | undefined }[] = [];
let collector: Server;
let endpoint: string;

beforeAll(async () => {
  collector = createServer((req, res) => {
    req.resume();
    req.on("end", () => {
      received.push({ path: req.url ?? "", auth: req.headers.authorization });
      res.writeHead(200, { "content-type": "application/json" }).end("{}");
    });
  });
  await new Promise<void>((resolve) => collector.listen(0, "127.0.0.1", resolve));
  endpoint = `http://127.0.0.1:${(collector.address() as AddressInfo).port}`;
});

afterAll(async () => {
  await getTelemetry()?.shutdown();
  await new Promise((resolve) => collector.close(resolve));
});

describe("startTelemetry", () => {
  it("registers globally once, and returns the same instance when called again", async () => {
    const first = startTelemetry({ serviceName: "one", env: {} });
    const second = startTelemetry({ serviceName: "two", env: {} });
    expect(second).toBe(first);
    expect(first.serviceName).toBe("one");
    expect(first.otlp).toEqual({ traces: undefined, metrics: undefined });
    expect(propagation.fields()).toContain("traceparent");
    // Nothing receives spans here, so none is recorded; each still has ids (for log correlation),
    // and the AsyncLocalStorage context carries it across awaits.
    await trace.getTracer("t").startActiveSpan("active", async (active) => {
      expect(active.isRecording()).toBe(false);
      expect(active.spanContext().traceId).toMatch(/^[0-9a-f]{32}$/);
      expect(active.spanContext().traceId).not.toBe("0".repeat(32));
      await new Promise((resolve) => setImmediate(resolve));
      expect(trace.getActiveSpan()).toBe(active);
      active.end();
    });
    expect(trace.getActiveSpan()).toBeUndefined();
    await first.shutdown();
    expect(getTelemetry()).toBeUndefined();
  });

  it("exports traces and metrics over OTLP/HTTP when OTEL_EXPORTER_OTLP_ENDPOINT is set", async () => {
    const telemetry = startTelemetry({
      serviceName: "vane-test",
      serviceVersion: "1.2.3",
      env: {
        OTEL_EXPORTER_OTLP_ENDPOINT: `${endpoint}/`,
        OTEL_EXPORTER_OTLP_HEADERS: "authorization=Bearer%20t0k",
        OTEL_SERVICE_NAME: "from-env",
        OTEL_RESOURCE_ATTRIBUTES: "deployment.environment.name=test",
      },
    });
    expect(telemetry.serviceName).toBe("from-env");
    expect(telemetry.otlp).toEqual({ traces: `${endpoint}/v1/traces`, metrics: `${endpoint}/v1/metrics` });
    trace.getTracer("t").startSpan("exported").end();
    metrics.getMeter("t").createCounter("vane.test.count").add(1);
    await telemetry.forceFlush();
    expect(received.map((r) => r.path).sort()).toEqual(["/v1/metrics", "/v1/traces"]);
    expect(received.every((r) => r.auth === "Bearer t0k")).toBe(true);
    await telemetry.shutdown();
  });

  it("honours OTEL_SDK_DISABLED and per-signal exporter settings", async () => {
    const telemetry = startTelemetry({
      serviceName: "x",
      env: { OTEL_EXPORTER_OTLP_ENDPOINT: endpoint, OTEL_TRACES_EXPORTER: "none", OTEL_EXPORTER_OTLP_METRICS_ENDPOINT: `${endpoint}/custom` },
    });
    expect(telemetry.otlp).toEqual({ traces: undefined, metrics: `${endpoint}/custom` });
    await telemetry.shutdown();
    const disabled = startTelemetry({ serviceName: "x", env: { OTEL_SDK_DISABLED: "true", OTEL_EXPORTER_OTLP_ENDPOINT: endpoint } });
    expect(disabled.otlp).toEqual({ traces: undefined, metrics: undefined });
    expect(trace.getTracer("t").startSpan("s").isRecording()).toBe(false);
    await disabled.shutdown();
  });
});

describe("parseKeyValues", () => {
  it("parses percent-encoded k=v lists and skips junk", () => {
    expect(parseKeyValues("a=1, b = x%2Cy ,junk,=v,c=%E0")).toEqual({ a: "1", b: "x,y" });
    expect(parseKeyValues(undefined)).toEqual({});
  });
});
