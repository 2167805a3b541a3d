/**
 * Trace context across NATS hops: W3C `traceparent`/`tracestate` travel in
 * message headers, so a trace continues from the RPC that published an event
 * to the consumer that processes it.
 */
import {
  context,
  propagation,
  ROOT_CONTEXT,
  SpanKind,
  SpanStatusCode,
  trace,
  type Attributes,
  type Context,
  type Span,
  type TextMapGetter,
  type TextMapSetter,
} from "@opentelemetry/api";
import { Match, type MsgHdrs } from "@nats-io/transport-node";

/** Tracer name for spans created by the bus helpers. */
export const BUS_TRACER = "vane.bus";

// Messaging semantic-convention keys (still "incubating" upstream, so spelled
// out here rather than imported from the unstable entry point).
export const ATTR_MESSAGING_SYSTEM = "messaging.system";
export const ATTR_MESSAGING_DESTINATION_NAME = "messaging.destination.name";
export const ATTR_MESSAGING_OPERATION_TYPE = "messaging.operation.type";
export const ATTR_MESSAGING_OPERATION_NAME = "messaging.operation.name";
export const ATTR_MESSAGING_MESSAGE_ID = "messaging.message.id";
export const ATTR_MESSAGING_MESSAGE_BODY_SIZE = "messaging.message.body.size";
export const ATTR_MESSAGING_CONSUMER_GROUP_NAME = "messaging.consumer.group.name";

const setter: TextMapSetter<MsgHdrs> = {
  set: (carrier, key, value) => carrier.set(key, value),
};

const getter: TextMapGetter<MsgHdrs | undefined> = {
  keys: (carrier) => carrier?.keys() ?? [],
  // NATS headers are case-preserving; accept any casing a foreign producer used.
  get: (carrier, key) => {
    if (!carrier?.has(key, Match.IgnoreCase)) return undefined;
    return carrier.get(key, Match.IgnoreCase);
  },
};

/**
 * Writes the trace context of `ctx` (default: the active context) into
 * `headers` as W3C `traceparent`/`tracestate` (and `baggage`). Returns `headers`.
 */
export function injectTraceHeaders(headers: MsgHdrs, ctx: Context = context.active()): MsgHdrs {
  propagation.inject(ctx, headers, setter);
  return headers;
}

/**
 * The remote trace context carried by a message's headers, on top of `base`
 * (default: the root context, so the consumer's own surroundings never leak in).
 */
export function contextFromHeaders(headers: MsgHdrs | undefined, base: Context = ROOT_CONTEXT): Context {
  return propagation.extract(base, headers, getter);
}

/** What {@link withConsumerSpan} needs from a message: a core `Msg` or a JetStream `JsMsg`. */
export interface TracedMessage {
  readonly subject: string;
  readonly headers?: MsgHdrs;
  readonly data?: Uint8Array;
  /** JetStream delivery info, present on `JsMsg`. */
  readonly info?: { readonly stream: string; readonly consumer?: string; readonly redeliveryCount?: number };
  readonly seq?: number;
}

/**
 * Runs `fn` inside a CONSUMER span named `process <name>` whose parent is
 * the producer's span (from the message headers), so logs, database spans
 * and RPCs made while handling the message join the producer's trace. The
 * span records the error and rethrows when `fn` fails.
 */
export async function withConsumerSpan<T>(msg: TracedMessage, name: string, fn: (span: Span) => Promise<T> | T, attributes: Attributes = {}): Promise<T> {
  const parent = contextFromHeaders(msg.headers);
  const msgId = msg.headers?.has("Nats-Msg-Id") ? msg.headers.get("Nats-Msg-Id") : undefined;
  const span = trace.getTracer(BUS_TRACER).startSpan(
    `process ${name}`,
    {
      kind: SpanKind.CONSUMER,
      attributes: {
        [ATTR_MESSAGING_SYSTEM]: "nats",
        [ATTR_MESSAGING_OPERATION_TYPE]: "process",
        [ATTR_MESSAGING_OPERATION_NAME]: "process",
        [ATTR_MESSAGING_DESTINATION_NAME]: msg.subject,
        ...(msgId ? { [ATTR_MESSAGING_MESSAGE_ID]: msgId } : {}),
        ...(msg.data ? { [ATTR_MESSAGING_MESSAGE_BODY_SIZE]: msg.data.length } : {}),
        ...(msg.info?.consumer ? { [ATTR_MESSAGING_CONSUMER_GROUP_NAME]: msg.info.consumer } : {}),
        ...(msg.info ? { "messaging.nats.stream": msg.info.stream } : {}),
        ...(msg.info?.redeliveryCount !== undefined ? { "messaging.nats.delivery_count": msg.info.redeliveryCount } : {}),
        ...(msg.seq !== undefined ? { "messaging.nats.stream_sequence": msg.seq } : {}),
        ...attributes,
      },
    },
    parent,
  );
  return runInSpan(span, parent, fn);
}

/**
 * Runs `fn` with `span` active on top of `parent`, ending the span afterwards
 * and recording a thrown error on it. Shared by the bus's producer and
 * consumer spans.
 */
export async function runInSpan<T>(span: Span, parent: Context, fn: (span: Span) => Promise<T> | T): Promise<T> {
  try {
    return await context.with(trace.setSpan(parent, span), () => fn(span));
  } catch (err) {
    span.recordException(err instanceof Error ? err : String(err));
    span.setStatus({ code: SpanStatusCode.ERROR, message: err instanceof Error ? err.message : String(err) });
    throw err;
  } finally {
    span.end();
  }
}
