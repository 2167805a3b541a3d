import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { context, SpanKind, SpanStatusCode, trace } from "@opentelemetry/api";
import { InMemorySpanExporter, SimpleSpanProcessor, type ReadableSpan } from "@opentelemetry/sdk-trace-node";
import { create } from "@bufbuild/protobuf";
import { Code, ConnectError, createClient, createRouterTransport, type Interceptor } from "@connectrpc/connect";
import { afterAll, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { Health, HealthCheckResponse_ServingStatus as Status, HealthCheckResponseSchema } from "#gen/grpc/health/v1/health_pb.ts";
import { createClientTracingInterceptor, createRpcMetricsInterceptor, createTracingInterceptor } from "#lib/server/rpc-telemetry.ts";
import { startTelemetry } from "#lib/process/telemetry.ts";

const spans = new InMemorySpanExporter();
const telemetry = startTelemetry({ serviceName: "rpc-telemetry-test", spanProcessors: [new SimpleSpanProcessor(spans)] });

// What the handler saw as the active span, to check the context reaches it.
let handlerTraceIds: (string | undefined)[] = [];
const activeTraceId = () => trace.getActiveSpan()?.spanContext().traceId;

function transport(clientInterceptors: Interceptor[]) {
  return createRouterTransport(
    (router) =>
      router.service(Health, {
        check(req) {
          handlerTraceIds.push(activeTraceId());
          if (req.service === "missing") throw new ConnectError("no such service", Code.NotFound);
          if (req.service === "broken") throw new Error("boom");
          return create(HealthCheckResponseSchema, { status: Status.SERVING });
        },
        list() {
          return {};
        },
        async *watch(req) {
          handlerTraceIds.push(activeTraceId());
          yield create(HealthCheckResponseSchema, { status: Status.SERVING });
          handlerTraceIds.push(activeTraceId());
          if (req.service === "broken") throw new ConnectError("went away", Code.Unavailable);
          yield create(HealthCheckResponseSchema, { status: Status.NOT_SERVING });
        },
      }),
    {
      router: { interceptors: [createTracingInterceptor(), createRpcMetricsInterceptor()] },
      transport: { interceptors: clientInterceptors },
    },
  );
}

const traced = createClient(Health, transport([createClientTracingInterceptor()]));
const plain = createClient(Health, transport([]));

const byKind = (kind: SpanKind): ReadableSpan[] => spans.getFinishedSpans().filter((s) => s.kind === kind);

let metricsServer: Server;
let metricsUrl: string;

beforeAll(async () => {
  metricsServer = createServer((req, res) => telemetry.metricsHandler(req, res));
  await new Promise<void>((resolve) => metricsServer.listen(0, "127.0.0.1", resolve));
  metricsUrl = `http://127.0.0.1:${(metricsServer.address() as AddressInfo).port}/metrics`;
});

beforeEach(() => {
  spans.reset();
  handlerTraceIds = [];
});

afterAll(async () => {
  await new Promise((resolve) => metricsServer.close(resolve));
  await telemetry.shutdown();
});

describe("tracing interceptors", () => {
  it("continues the client's trace in a SERVER span named after the RPC", async () => {
    const root = trace.getTracer("test").startSpan("caller");
    await context.with(trace.setSpan(context.active(), root), () => traced.check({ service: "" }));
    root.end();
    const [server] = byKind(SpanKind.SERVER);
    const [client] = byKind(SpanKind.CLIENT);
    expect(server.name).toBe("grpc.health.v1.Health/Check");
    expect(client.name).toBe("grpc.health.v1.Health/Check");
    expect(client.parentSpanContext?.spanId).toBe(root.spanContext().spanId);
    expect(server.parentSpanContext?.spanId).toBe(client.spanContext().spanId);
    expect(server.spanContext().traceId).toBe(root.spanContext().traceId);
    expect(server.attributes).toMatchObject({
      "rpc.system": "connect_rpc",
      "rpc.service": "grpc.health.v1.Health",
      "rpc.method": "Check",
    });
    expect(handlerTraceIds).toEqual([root.spanContext().traceId]);
  });

  it("starts a new trace when the request carries no context, ignoring the process's active span", async () => {
    const root = trace.getTracer("test").startSpan("unrelated");
    await context.with(trace.setSpan(context.active(), root), () => plain.check({ service: "" }));
    root.end();
    const [server] = byKind(SpanKind.SERVER);
    expect(server.parentSpanContext).toBeUndefined();
    expect(server.spanContext().traceId).not.toBe(root.spanContext().traceId);
  });

  it("records the Connect code; only server faults mark the server span as an error", async () => {
    await expect(traced.check({ service: "missing" })).rejects.toMatchObject({ code: Code.NotFound });
    await expect(traced.check({ service: "broken" })).rejects.toMatchObject({ code: Code.Internal });
    const [notFound, broken] = byKind(SpanKind.SERVER);
    expect(notFound.attributes["rpc.connect_rpc.error_code"]).toBe("not_found");
    expect(notFound.status.code).toBe(SpanStatusCode.UNSET);
    // A plain Error becomes Internal on the wire; the span says the same, and keeps the cause.
    expect(broken.attributes["rpc.connect_rpc.error_code"]).toBe("internal");
    expect(broken.events[0]?.attributes?.["exception.message"]).toBe("boom");
    expect(broken.status.code).toBe(SpanStatusCode.ERROR);
    // The caller sees both as failures.
    expect(byKind(SpanKind.CLIENT).map((s) => s.status.code)).toEqual([SpanStatusCode.ERROR, SpanStatusCode.ERROR]);
  });

  it("keeps a streaming call's span open until the stream ends, with the span active in the handler", async () => {
    const received: Status[] = [];
    for await (const res of traced.watch({ service: "" })) {
      received.push(res.status);
      // The server span is still open while messages flow.
      expect(byKind(SpanKind.SERVER)).toHaveLength(0);
    }
    expect(received).toEqual([Status.SERVING, Status.NOT_SERVING]);
    const [server] = byKind(SpanKind.SERVER);
    expect(server.name).toBe("grpc.health.v1.Health/Watch");
    expect(handlerTraceIds).toEqual([server.spanContext().traceId, server.spanContext().traceId]);
  });

  it("records an error raised mid-stream", async () => {
    const consume = async () => {
      for await (const _ of traced.watch({ service: "broken" })) void _;
    };
    await expect(consume()).rejects.toMatchObject({ code: Code.Unavailable });
    const [server] = byKind(SpanKind.SERVER);
    expect(server.attributes["rpc.connect_rpc.error_code"]).toBe("unavailable");
    expect(server.status.code).toBe(SpanStatusCode.ERROR);
  });
});

describe("metrics interceptor", () => {
  it("exposes RED metrics per RPC on /metrics in the Prometheus format", async () => {
    await plain.check({ service: "" });
    await expect(plain.check({ service: "missing" })).rejects.toThrow();
    for await (const _ of plain.watch({ service: "" })) void _;

    const res = await fetch(metricsUrl);
    expect(res.status).toBe(200);
    expect(res.headers.get("content-type")).toContain("text/plain");
    const text = await res.text();
    const line = (name: string, ...labels: string[]) => text.split("\n").find((l) => l.startsWith(`${name}{`) && labels.every((x) => l.includes(x)));

    const ok = line("rpc_server_requests_total", 'rpc_method="Check"', 'rpc_status="ok"');
    expect(ok).toMatch(/rpc_service="grpc\.health\.v1\.Health"/);
    expect(Number(ok!.split(" ").at(-1))).toBeGreaterThanOrEqual(1);
    expect(line("rpc_server_requests_total", 'rpc_method="Check"', 'rpc_status="not_found"', 'rpc_connect_rpc_error_code="not_found"')).toBeDefined();
    expect(line("rpc_server_requests_total", 'rpc_method="Watch"', 'rpc_status="ok"')).toBeDefined();
    // Histogram with sub-millisecond buckets, in milliseconds.
    expect(text).toMatch(/rpc_server_duration_(milliseconds_)?bucket\{[^}]*rpc_method="Check"[^}]*le="0\.25"\}/);
    expect(text).toMatch(/rpc_server_active_requests\{[^}]*rpc_method="Watch"[^}]*\} 0/);
  });
});
