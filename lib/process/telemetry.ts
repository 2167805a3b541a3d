/**
 * OpenTelemetry for one process: a tracer provider (W3C propagation,
 * AsyncLocalStorage context) and a meter provider whose Prometheus reader is
 * served by the service's own HTTP server, plus OTLP export when configured.
 *
 * This is the only place that reads `OTEL_*` variables; it reads them from the
 * env object it is given, never from `process.env` directly.
 */
import type { IncomingMessage, ServerResponse } from "node:http";
import type { Http2ServerRequest, Http2ServerResponse } from "node:http2";
import { context, metrics, propagation, trace, type Attributes } from "@opentelemetry/api";
import { CompositePropagator, W3CBaggagePropagator, W3CTraceContextPropagator } from "@opentelemetry/core";
import { OTLPMetricExporter } from "@opentelemetry/exporter-metrics-otlp-http";
import { PrometheusExporter, PrometheusSerializer } from "@opentelemetry/exporter-prometheus";
import { OTLPTraceExporter } from "@opentelemetry/exporter-trace-otlp-http";
import { resourceFromAttributes } from "@opentelemetry/resources";
import { MeterProvider, PeriodicExportingMetricReader, type IMetricReader } from "@opentelemetry/sdk-metrics";
import {
  AlwaysOffSampler,
  AlwaysOnSampler,
  BatchSpanProcessor,
  NodeTracerProvider,
  ParentBasedSampler,
  TraceIdRatioBasedSampler,
  type Sampler,
  type SpanProcessor,
} from "@opentelemetry/sdk-trace-node";
import { ATTR_SERVICE_NAME, ATTR_SERVICE_VERSION } from "@opentelemetry/semantic-conventions";

/** The process environment, or a plain object standing in for it in tests. */
export type Env = Readonly<Record<string, string | undefined>>;

/** Options for {@link startTelemetry}. */
export interface TelemetryOptions {
  /** `service.name` (OTEL_SERVICE_NAME wins when set, as the spec requires). */
  serviceName: string;
  /** `service.version`, e.g. the package version or image tag. */
  serviceVersion?: string;
  /** Source of the standard `OTEL_*` variables (pass `process.env` from the entry point). */
  env?: Env;
  /** Extra span processors, e.g. `new SimpleSpanProcessor(new InMemorySpanExporter())` in tests. */
  spanProcessors?: SpanProcessor[];
}

/** The process's telemetry, returned by {@link startTelemetry}. */
export interface Telemetry {
  readonly tracerProvider: NodeTracerProvider;
  readonly meterProvider: MeterProvider;
  /** `service.name` actually used. */
  readonly serviceName: string;
  /** Whether spans and metrics are also pushed over OTLP. */
  readonly otlp: { traces: string | undefined; metrics: string | undefined };
  /** Node HTTP/1 or HTTP/2 handler for `GET /metrics` in the Prometheus text format. */
  metricsHandler(req: IncomingMessage | Http2ServerRequest, res: ServerResponse | Http2ServerResponse): void;
  /** Exports everything buffered so far. */
  forceFlush(): Promise<void>;
  /** Flushes, stops exporters and unregisters the global providers. Idempotent. */
  shutdown(): Promise<void>;
}

let current: Telemetry | undefined;

/** The running telemetry, if {@link startTelemetry} was called. */
export function getTelemetry(): Telemetry | undefined {
  return current;
}

/**
 * Starts telemetry for this process and registers it globally. Call it once,
 * before creating servers or clients; later calls return the same instance
 * (the first caller's options win) until `shutdown()`.
 */
export function startTelemetry(options: TelemetryOptions): Telemetry {
  if (current) return current;
  const env = options.env ?? {};
  const disabled = env.OTEL_SDK_DISABLED?.trim().toLowerCase() === "true";
  const serviceName = env.OTEL_SERVICE_NAME?.trim() || options.serviceName;
  const resource = resourceFromAttributes({
    ...parseKeyValues(env.OTEL_RESOURCE_ATTRIBUTES),
    [ATTR_SERVICE_NAME]: serviceName,
    ...(options.serviceVersion ? { [ATTR_SERVICE_VERSION]: options.serviceVersion } : {}),
  } satisfies Attributes);

  const tracesUrl = disabled ? undefined : otlpUrl(env, "TRACES", "v1/traces");
  const metricsUrl = disabled ? undefined : otlpUrl(env, "METRICS", "v1/metrics");

  const spanProcessors: SpanProcessor[] = [...(options.spanProcessors ?? [])];
  if (tracesUrl) {
    const exporter = new OTLPTraceExporter({ url: tracesUrl, headers: otlpHeaders(env, "TRACES") });
    spanProcessors.push(new BatchSpanProcessor(exporter));
  }
  // With nothing to receive spans (no OTLP endpoint, no processor given), recording them would be
  // pure cost on every call: sample none. Unrecorded spans still get trace and span ids, so log
  // lines and outgoing traceparent headers correlate all the same.
  const tracerProvider = new NodeTracerProvider({
    resource,
    sampler: disabled || spanProcessors.length === 0 ? new AlwaysOffSampler() : sampler(env),
    spanProcessors,
  });

  // The service mounts /metrics on its own port (one port per process in
  // Kubernetes, scraped through the pod annotation), so no second server here.
  const prometheus = new PrometheusExporter({ preventServerStart: true });
  const serializer = new PrometheusSerializer();
  const readers: IMetricReader[] = [prometheus];
  if (metricsUrl) {
    const interval = positiveInt(env.OTEL_METRIC_EXPORT_INTERVAL) ?? 60_000;
    readers.push(
      new PeriodicExportingMetricReader({
        exporter: new OTLPMetricExporter({ url: metricsUrl, headers: otlpHeaders(env, "METRICS") }),
        exportIntervalMillis: interval,
        exportTimeoutMillis: Math.min(positiveInt(env.OTEL_METRIC_EXPORT_TIMEOUT) ?? 30_000, interval),
      }),
    );
  }
  const meterProvider = new MeterProvider({ resource, readers });

  tracerProvider.register({
    propagator: new CompositePropagator({
      propagators: [new W3CTraceContextPropagator(), new W3CBaggagePropagator()],
    }),
    // undefined → the default AsyncLocalStorageContextManager
  });
  metrics.setGlobalMeterProvider(meterProvider);

  let stopped: Promise<void> | undefined;
  const telemetry: Telemetry = {
    tracerProvider,
    meterProvider,
    serviceName,
    otlp: { traces: tracesUrl, metrics: metricsUrl },
    metricsHandler: (_req, res) => {
      // Our own rendering rather than the exporter's handler: it works on
      // HTTP/2 responses too and states the text format version Prometheus expects.
      prometheus.collect().then(
        ({ resourceMetrics }) => {
          res.statusCode = 200;
          res.setHeader("content-type", "text/plain; version=0.0.4; charset=utf-8");
          res.end(serializer.serialize(resourceMetrics));
        },
        (err: unknown) => {
          res.statusCode = 500;
          res.setHeader("content-type", "text/plain; charset=utf-8");
          res.end(`# collecting metrics failed: ${err instanceof Error ? err.message : String(err)}\n`);
        },
      );
    },
    forceFlush: async () => {
      await Promise.all([tracerProvider.forceFlush(), meterProvider.forceFlush()]);
    },
    shutdown: () =>
      (stopped ??= (async () => {
        try {
          await Promise.allSettled([tracerProvider.shutdown(), meterProvider.shutdown()]);
        } finally {
          // Unregister so a later startTelemetry (tests) can register afresh.
          trace.disable();
          metrics.disable();
          propagation.disable();
          context.disable();
          if (current === telemetry) current = undefined;
        }
      })()),
  };
  current = telemetry;
  return telemetry;
}

// OTEL_EXPORTER_OTLP_<SIGNAL>_ENDPOINT is used as is; the generic endpoint gets
// the signal's path appended (per the OTLP exporter specification).
function otlpUrl(env: Env, signal: "TRACES" | "METRICS", path: string): string | undefined {
  const exporter = env[`OTEL_${signal}_EXPORTER`]?.trim().toLowerCase();
  if (exporter !== undefined && exporter !== "" && !exporter.split(",").includes("otlp")) return undefined;
  const specific = env[`OTEL_EXPORTER_OTLP_${signal}_ENDPOINT`]?.trim();
  if (specific) return specific;
  const generic = env.OTEL_EXPORTER_OTLP_ENDPOINT?.trim();
  if (!generic) return undefined;
  return `${generic.replace(/\/+$/, "")}/${path}`;
}

function otlpHeaders(env: Env, signal: "TRACES" | "METRICS"): Record<string, string> {
  return {
    ...parseKeyValues(env.OTEL_EXPORTER_OTLP_HEADERS),
    ...parseKeyValues(env[`OTEL_EXPORTER_OTLP_${signal}_HEADERS`]),
  };
}

/** Parses the `k1=v1,k2=v2` (percent-encoded) lists used by OTEL_RESOURCE_ATTRIBUTES and OTEL_*_HEADERS. */
export function parseKeyValues(value: string | undefined): Record<string, string> {
  const out: Record<string, string> = {};
  if (!value) return out;
  for (const pair of value.split(",")) {
    const eq = pair.indexOf("=");
    if (eq <= 0) continue;
    try {
      out[decodeURIComponent(pair.slice(0, eq).trim())] = decodeURIComponent(pair.slice(eq + 1).trim());
    } catch {
      // A malformed escape must not stop the process from starting; skip the pair.
    }
  }
  return out;
}

function sampler(env: Env): Sampler {
  const arg = Number.parseFloat(env.OTEL_TRACES_SAMPLER_ARG ?? "");
  const ratio = Number.isFinite(arg) && arg >= 0 && arg <= 1 ? arg : 1;
  switch (env.OTEL_TRACES_SAMPLER?.trim().toLowerCase()) {
    case "always_on":
      return new AlwaysOnSampler();
    case "always_off":
      return new AlwaysOffSampler();
    case "traceidratio":
      return new TraceIdRatioBasedSampler(ratio);
    case "parentbased_always_off":
      return new ParentBasedSampler({ root: new AlwaysOffSampler() });
    case "parentbased_traceidratio":
      return new ParentBasedSampler({ root: new TraceIdRatioBasedSampler(ratio) });
    default: // "parentbased_always_on", the spec's default
      return new ParentBasedSampler({ root: new AlwaysOnSampler() });
  }
}

function positiveInt(value: string | undefined): number | undefined {
  const n = Number.parseInt(value ?? "", 10);
  return Number.isFinite(n) && n > 0 ? n : undefined;
}
