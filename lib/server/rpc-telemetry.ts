/**
 * Traces and RED metrics for Connect RPCs. `node:http2` servers are not
 * auto-instrumented by OpenTelemetry, so spans and metrics come from Connect
 * interceptors that extract (server) and inject (client) the W3C context.
 *
 * Create the interceptors after `startTelemetry()`; instruments are also
 * created lazily on the first call, so a later start still takes effect.
 */
import {
  context,
  metrics,
  propagation,
  ROOT_CONTEXT,
  SpanKind,
  SpanStatusCode,
  trace,
  type Attributes,
  type Context,
  type Histogram,
  type Span,
  type TextMapGetter,
  type TextMapSetter,
} from "@opentelemetry/api";
import { Code, ConnectError, type Interceptor, type StreamRequest, type UnaryRequest } from "@connectrpc/connect";
import { codeToString } from "@connectrpc/connect/protocol-connect";

/** Tracer and meter name for RPC instrumentation. */
export const RPC_INSTRUMENTATION = "vane.rpc";

// RPC semantic-convention keys (incubating upstream, so spelled out here).
export const ATTR_RPC_SYSTEM = "rpc.system";
export const ATTR_RPC_SERVICE = "rpc.service";
export const ATTR_RPC_METHOD = "rpc.method";
export const ATTR_RPC_CONNECT_RPC_ERROR_CODE = "rpc.connect_rpc.error_code";
export const ATTR_RPC_GRPC_STATUS_CODE = "rpc.grpc.status_code";
/** Our own label: "ok" or the Connect code name (`not_found`…), present on every sample. */
export const ATTR_RPC_STATUS = "rpc.status";

/** Histogram buckets in ms: sub-millisecond evaluations up to multi-second streams. */
export const RPC_DURATION_BUCKETS_MS: readonly number[] = [0.1, 0.25, 0.5, 1, 2.5, 5, 10, 25, 50, 100, 250, 500, 1_000, 2_500, 5_000, 10_000, 30_000];

type AnyRequest = UnaryRequest | StreamRequest;
type Side = "server" | "client";

const headerGetter: TextMapGetter<Headers> = {
  keys: (h) => [...h.keys()],
  get: (h, key) => h.get(key) ?? undefined,
};

const headerSetter: TextMapSetter<Headers> = {
  set: (h, key, value) => h.set(key, value),
};

/** `<package.Service>/<Method>`, the span name the RPC conventions prescribe. */
export function rpcSpanName(req: AnyRequest): string {
  return `${req.service.typeName}/${req.method.name}`;
}

// One Connect handler serves gRPC, gRPC-Web and Connect; name the wire protocol.
function rpcSystem(req: AnyRequest): "grpc" | "connect_rpc" {
  return req.header.get("content-type")?.startsWith("application/grpc") ? "grpc" : "connect_rpc";
}

function baseAttributes(req: AnyRequest): Attributes {
  return {
    [ATTR_RPC_SYSTEM]: rpcSystem(req),
    [ATTR_RPC_SERVICE]: req.service.typeName,
    [ATTR_RPC_METHOD]: req.method.name,
  };
}

/** The Connect code an RPC ended with (undefined when it succeeded). */
function outcome(req: AnyRequest, side: Side, err: unknown, finished: boolean): Code | undefined {
  if (err instanceof ConnectError) return err.code;
  // Connect's handlers answer any other thrown error with Internal; say the same.
  if (err !== undefined) return side === "server" ? Code.Internal : ConnectError.from(err).code;
  // A stream abandoned before its end: the caller went away.
  if (!finished && req.signal.aborted) return Code.Canceled;
  return undefined;
}

// Server side, only codes that mean the server failed mark the span as an
// error (per the RPC conventions); a NotFound is a correct answer.
const SERVER_ERROR_CODES = new Set<Code>([Code.Unknown, Code.DeadlineExceeded, Code.Unimplemented, Code.Internal, Code.Unavailable, Code.DataLoss]);

/**
 * Runs `next(req)` and calls `done` exactly once when the call is over: for a
 * streaming response, when the stream ends, fails or is abandoned. Each step of
 * the response stream runs inside `ctx`, so the handler's lazily-run generator
 * sees the RPC's span.
 */
async function observe(
  req: AnyRequest,
  side: Side,
  next: (req: AnyRequest) => ReturnType<ReturnType<Interceptor>>,
  ctx: Context,
  done: (code: Code | undefined, err: unknown) => void,
): ReturnType<ReturnType<Interceptor>> {
  let res;
  try {
    res = await context.with(ctx, () => next(req));
  } catch (err) {
    done(outcome(req, side, err, true), err);
    throw err;
  }
  if (!res.stream) {
    done(undefined, undefined);
    return res;
  }
  const source = res.message;
  async function* tracked() {
    const iterator = source[Symbol.asyncIterator]();
    let finished = false;
    let error: unknown;
    try {
      for (;;) {
        const step = await context.with(ctx, () => iterator.next());
        if (step.done) {
          finished = true;
          return;
        }
        yield step.value;
      }
    } catch (err) {
      error = err;
      finished = true;
      throw err;
    } finally {
      if (!finished) await iterator.return?.();
      done(outcome(req, side, error, finished), error);
    }
  }
  return { ...res, message: tracked() };
}

function endSpan(span: Span, req: AnyRequest, kind: SpanKind, code: Code | undefined, err: unknown): void {
  const system = span.isRecording() ? rpcSystem(req) : undefined;
  if (system === "grpc") span.setAttribute(ATTR_RPC_GRPC_STATUS_CODE, code ?? 0);
  if (code !== undefined) {
    if (system === "connect_rpc") span.setAttribute(ATTR_RPC_CONNECT_RPC_ERROR_CODE, codeToString(code));
    if (kind === SpanKind.CLIENT || SERVER_ERROR_CODES.has(code)) {
      const message = err instanceof ConnectError ? err.rawMessage : codeToString(code);
      span.setStatus({ code: SpanStatusCode.ERROR, message });
      if (err !== undefined) span.recordException(err instanceof Error ? err : String(err));
    }
  }
  span.end();
}

/**
 * Server interceptor: continues the caller's trace from the request headers
 * (never from whatever context happens to be active in this process) and runs
 * the call inside a SERVER span named `<package.Service>/<Method>`.
 */
export function createTracingInterceptor(): Interceptor {
  const tracer = trace.getTracer(RPC_INSTRUMENTATION);
  return (next) => async (req) => {
    const parent = propagation.extract(ROOT_CONTEXT, req.header, headerGetter);
    const span = tracer.startSpan(rpcSpanName(req), { kind: SpanKind.SERVER, attributes: baseAttributes(req) }, parent);
    return observe(req, "server", next, trace.setSpan(parent, span), (code, err) => endSpan(span, req, SpanKind.SERVER, code, err));
  };
}

/**
 * Client interceptor for service-to-service calls: runs the call in a CLIENT
 * span (child of the active span) and sends its context in W3C headers.
 */
export function createClientTracingInterceptor(): Interceptor {
  const tracer = trace.getTracer(RPC_INSTRUMENTATION);
  return (next) => async (req) => {
    const parent = context.active();
    const span = tracer.startSpan(rpcSpanName(req), { kind: SpanKind.CLIENT, attributes: baseAttributes(req) }, parent);
    const ctx = trace.setSpan(parent, span);
    propagation.inject(ctx, req.header, headerSetter);
    return observe(req, "client", next, ctx, (code, err) => endSpan(span, req, SpanKind.CLIENT, code, err));
  };
}

/**
 * Request counts and in-flight calls are plain numbers in this module, read by observable
 * instruments when metrics are collected; only the duration histogram records per call. The
 * metrics SDK hashes an attribute set on every record, and three of the four records a call made
 * cost more than the evaluation it measured. One table for the process, so two servers that serve
 * the same method (health on every port) add up instead of hiding each other.
 */
interface Tally {
  readonly attributes: Attributes;
  value: number;
}
const requestTallies = new Map<string, Tally>();
const activeTallies = new Map<string, Tally>();
/** Meters (one per installed meter provider) that already read the tallies. */
const observingMeters = new WeakSet<object>();

function tally(table: Map<string, Tally>, key: string, attributes: () => Attributes): Tally {
  let t = table.get(key);
  if (t === undefined) table.set(key, (t = { attributes: attributes(), value: 0 }));
  return t;
}

/**
 * Server interceptor recording RED metrics per RPC:
 * `rpc.server.duration` (histogram, ms; for streaming responses until the
 * stream ends), `rpc.server.requests` (counter) and `rpc.server.active_requests`
 * (in flight), labelled by rpc.system, rpc.service, rpc.method, rpc.status and,
 * on failure, rpc.connect_rpc.error_code.
 */
export function createRpcMetricsInterceptor(): Interceptor {
  let duration: Histogram | undefined;
  let durationMeter: object | undefined;
  const instruments = (): Histogram => {
    const meter = metrics.getMeter(RPC_INSTRUMENTATION);
    if (duration && durationMeter === meter) return duration;
    durationMeter = meter;
    duration = meter.createHistogram("rpc.server.duration", {
      description: "Duration of RPCs handled by this server, until the last response message for streams",
      unit: "ms",
      advice: { explicitBucketBoundaries: [...RPC_DURATION_BUCKETS_MS] },
    });
    if (!observingMeters.has(meter)) {
      observingMeters.add(meter);
      const requests = meter.createObservableCounter("rpc.server.requests", { description: "RPCs handled by this server", unit: "{request}" });
      const active = meter.createObservableUpDownCounter("rpc.server.active_requests", {
        description: "RPCs currently in progress on this server",
        unit: "{request}",
      });
      meter.addBatchObservableCallback(
        (r) => {
          for (const t of requestTallies.values()) r.observe(requests, t.value, t.attributes);
          for (const t of activeTallies.values()) r.observe(active, t.value, t.attributes);
        },
        [requests, active],
      );
    }
    return duration;
  };
  return (next) => async (req) => {
    const histogram = instruments();
    const system = rpcSystem(req);
    const base = `${system} ${req.service.typeName}/${req.method.name}`;
    const active = tally(activeTallies, base, () => baseAttributes(req));
    const start = performance.now();
    active.value++;
    return observe(req, "server", next, context.active(), (code) => {
      active.value--;
      const status = code === undefined ? "ok" : codeToString(code);
      const done = tally(requestTallies, `${base} ${status}`, () => ({
        ...active.attributes,
        [ATTR_RPC_STATUS]: status,
        ...(code === undefined ? {} : { [ATTR_RPC_CONNECT_RPC_ERROR_CODE]: status }),
      }));
      done.value++;
      histogram.record(performance.now() - start, done.attributes);
    });
  };
}
