/**
 * A lean path for unary and server-streaming gRPC calls over HTTP/2, for the methods where
 * per-call (and per-message) overhead is the product: flag evaluation and watch streams. connect-node serves each call through Node's HTTP/2 compatibility
 * objects, async-iterable pipelines, several Headers/URL objects and an AbortController that is
 * aborted when every call ends — a DOMException with a stack trace each time. Measured, that costs
 * several times the evaluation itself (docs/benchmarks.md). This path reads the HTTP/2 stream
 * directly and runs the very same implementation through the very same interceptors (tracing,
 * RED metrics, auth, deadline, protovalidate) with Connect's own invoke and status helpers, so a
 * client cannot tell which path served it. Anything unusual (compression, gRPC-Web, JSON codec,
 * HTTP/1.1, streaming methods) goes the normal way.
 *
 * The helpers used from `@connectrpc/connect/protocol*` are marked internal by Connect; versions
 * are pinned exactly, and the gRPC interop tests exercise this path.
 */
import type { IncomingHttpHeaders, ServerHttp2Stream } from "node:http2";
import { fromBinary, toBinary, type DescMethod, type Message } from "@bufbuild/protobuf";
import { Code, ConnectError, createMethodImplSpec, type Interceptor } from "@connectrpc/connect";
import { createAsyncIterable, invokeUnaryImplementation, transformInvokeImplementation } from "@connectrpc/connect/protocol";
import { parseTimeout, setTrailerStatus } from "@connectrpc/connect/protocol-grpc";
import type { Logger } from "#lib/process/logger.ts";
import { aborted, CALL_ENDED, createCallFactory, type Call } from "#lib/server/fast-call.ts";
import { binaryOf } from "#lib/server/prepared-encodings.ts";
import { binaryDecodeError } from "#lib/server/request-decoding.ts";
import { answerFor } from "#lib/server/rpc-errors.ts";
import { frameOnce } from "#lib/server/shared-frames.ts";

/** One unary or server-streaming method and its implementation, as Connect's router would hold it. */
export interface FastUnaryMethod {
  method: DescMethod & { methodKind: "unary" | "server_streaming" };
  // The implementation's type is checked where the ServiceImpl is built.
  impl: (req: any, ctx: any) => unknown; // eslint-disable-line @typescript-eslint/no-explicit-any
}

/** Options for {@link createGrpcFastPath}. */
export interface GrpcFastPathOptions {
  methods: FastUnaryMethod[];
  /** Applied as Connect applies them; the default deadline is this path's own (below). */
  interceptors: Interceptor[];
  /** Deadline of unary calls whose client sent none. */
  defaultTimeoutMs: number;
  shutdownSignal: AbortSignal;
  maxTimeoutMs: number;
  readMaxBytes: number;
  /** Where failures no interceptor answered are logged. */
  logger: Logger;
}

/** Handles the stream and returns true when it is a call for this path; false leaves it alone. */
export type GrpcFastPath = (stream: ServerHttp2Stream, headers: IncomingHttpHeaders, onDone: () => void) => boolean;

const GRPC_PROTO = /^application\/grpc(\+proto)?(;|$)/i;

type StartCall = (method: FastUnaryMethod["method"], headers: IncomingHttpHeaders, requestHeader: Headers, timeoutMs: number | undefined) => Call;

/** Creates the fast path for `methods`, keyed by their `/package.Service/Method` path. */
export function createGrpcFastPath(opts: GrpcFastPathOptions): GrpcFastPath {
  const log = opts.logger.child({ component: "rpc" });
  const newCall = createCallFactory(opts.shutdownSignal);
  const startCall: StartCall = (method, headers, requestHeader, timeoutMs) =>
    newCall({
      method,
      protocolName: "grpc",
      url: `http://${headerValue(headers[":authority"]) ?? "localhost"}${headers[":path"]}`,
      requestHeader,
      timeoutMs,
      deadlineError: (ms) => new ConnectError(`the call took longer than ${ms} ms`, Code.DeadlineExceeded),
    });
  const routes = new Map<string, { spec: ReturnType<typeof createMethodImplSpec>; method: FastUnaryMethod["method"] }>();
  for (const m of opts.methods) {
    routes.set(`/${m.method.parent.typeName}/${m.method.name}`, { spec: createMethodImplSpec(m.method, m.impl as never), method: m.method });
  }
  return (stream, headers, onDone) => {
    const route = routes.get(headers[":path"] ?? "");
    if (route === undefined || headers[":method"] !== "POST") return false;
    const contentType = headers["content-type"];
    if (contentType === undefined || !GRPC_PROTO.test(contentType)) return false;
    const encoding = headers["grpc-encoding"];
    if (encoding !== undefined && encoding !== "identity") return false;

    const chunks: Buffer[] = [];
    let size = 0;
    let failed = false;
    stream.on("data", (chunk: Buffer) => {
      size += chunk.length;
      if (size > opts.readMaxBytes + 5) {
        if (!failed) respondError(stream, new ConnectError(`message larger than ${opts.readMaxBytes} bytes`, Code.ResourceExhausted));
        failed = true;
        return;
      }
      chunks.push(chunk);
    });
    stream.once("close", onDone);
    stream.once("end", () => {
      if (failed) return;
      serve(stream, headers, route.spec, route.method, chunks.length === 1 ? chunks[0] : Buffer.concat(chunks), opts, startCall).catch((err: unknown) =>
        respondError(stream, answerFor(err, { rpc: `${route.method.parent.typeName}/${route.method.name}` }, log)),
      );
    });
    return true;
  };
}

async function serve(
  stream: ServerHttp2Stream,
  headers: IncomingHttpHeaders,
  spec: ReturnType<typeof createMethodImplSpec>,
  method: FastUnaryMethod["method"],
  body: Buffer,
  opts: GrpcFastPathOptions,
  startCall: StartCall,
): Promise<void> {
  // Exactly one uncompressed envelope: [flags:1][length:4][message].
  if (body.length < 5 || body[0] !== 0 || body.readUInt32BE(1) !== body.length - 5) {
    const why = body.length >= 5 && body[0] & 1 ? "a compressed message without grpc-encoding" : "not exactly one message";
    return respondError(stream, new ConnectError(`protocol error: ${why}`, Code.InvalidArgument));
  }
  let input;
  try {
    input = fromBinary(method.input, body.subarray(5));
  } catch (err) {
    return respondError(stream, binaryDecodeError(method.input, body.subarray(5), err instanceof Error ? err.message : String(err)));
  }
  const timeout = parseTimeout(headerValue(headers["grpc-timeout"]), opts.maxTimeoutMs);
  if (timeout.error) return respondError(stream, timeout.error);
  const requestHeader = new Headers();
  for (const [k, v] of Object.entries(headers)) if (k[0] !== ":" && v !== undefined) requestHeader.set(k, Array.isArray(v) ? v.join(", ") : v);
  const unary = method.methodKind === "unary";
  const call = startCall(method, headers, requestHeader, timeout.timeoutMs ?? (unary ? opts.defaultTimeoutMs : undefined));
  const { context, controller } = call;
  // A reset before the answer aborts the call (with a reason, so no DOMException is built).
  const onClose = () => controller.abort(new ConnectError("the client went away", Code.Canceled));
  stream.once("close", onClose);
  if (!unary) return serveStream(stream, spec, method, input, call, onClose, opts);
  let output;
  try {
    // The deadline (the client's or the default) answers DEADLINE_EXCEEDED even if the handler
    // does not watch its signal.
    output = await Promise.race([
      invokeUnaryImplementation(spec as Parameters<typeof invokeUnaryImplementation>[0], context, input, opts.interceptors),
      aborted(call),
    ]);
  } catch (err) {
    return respondError(
      stream,
      err instanceof ConnectError ? err : answerFor(err, { rpc: `${method.parent.typeName}/${method.name}` }, opts.logger),
      context.responseHeader,
    );
  } finally {
    stream.off("close", onClose);
    call.end();
  }
  if (stream.destroyed || stream.closed) return;
  const frame = frameOf(binaryOf(method.output, output));
  const trailer: Record<string, string> = { "grpc-status": "0" };
  context.responseTrailer.forEach((v, k) => void (trailer[k] = v));
  stream.respond({ ":status": 200, "content-type": "application/grpc+proto", ...plain(context.responseHeader) }, { waitForTrailers: true });
  stream.once("wantTrailers", () => stream.sendTrailers(trailer));
  stream.end(frame);
}

/**
 * A server stream: each message is written as it comes (waiting for the peer when HTTP/2 flow
 * control says so), then the status. A client that goes away aborts the handler's signal; a
 * server shutdown ends the stream with the shutdown's status, as Connect's handler does.
 */
async function serveStream(
  stream: ServerHttp2Stream,
  spec: ReturnType<typeof createMethodImplSpec>,
  method: FastUnaryMethod["method"],
  input: unknown,
  call: Call,
  onClose: () => void,
  opts: GrpcFastPathOptions,
): Promise<void> {
  const { context } = call;
  let error: ConnectError | undefined;
  try {
    const run = transformInvokeImplementation(spec as Parameters<typeof transformInvokeImplementation>[0], context, opts.interceptors);
    for await (const message of run(createAsyncIterable([input as Message]))) {
      if (stream.destroyed || stream.closed) break;
      if (!stream.headersSent)
        stream.respond({ ":status": 200, "content-type": "application/grpc+proto", ...plain(context.responseHeader) }, { waitForTrailers: true });
      const frame = frameOnce(message as object, () => frameOf(toBinary(method.output, message as never)));
      if (!stream.write(frame)) await new Promise((r) => stream.once("drain", r).once("close", r));
    }
    const reason: unknown = context.signal.reason;
    if (context.signal.aborted && reason instanceof ConnectError && reason !== CALL_ENDED) error = reason;
  } catch (err) {
    error = err instanceof ConnectError ? err : answerFor(err, { rpc: `${method.parent.typeName}/${method.name}` }, opts.logger);
  } finally {
    stream.off("close", onClose);
    call.end();
  }
  if (stream.destroyed || stream.closed) return;
  if (!stream.headersSent) {
    if (error) return respondError(stream, error, context.responseHeader);
    stream.respond({ ":status": 200, "content-type": "application/grpc+proto", ...plain(context.responseHeader) }, { waitForTrailers: true });
  }
  const trailer = error ? errorTrailer(error) : { "grpc-status": "0", ...plain(context.responseTrailer) };
  stream.once("wantTrailers", () => stream.sendTrailers(trailer));
  stream.end();
}

function frameOf(bytes: Uint8Array): Buffer {
  const frame = Buffer.allocUnsafe(5 + bytes.length);
  frame[0] = 0;
  frame.writeUInt32BE(bytes.length, 1);
  frame.set(bytes, 5);
  return frame;
}

/** An error response as Connect's gRPC handler sends it: headers, no message, status in trailers. */
function respondError(stream: ServerHttp2Stream, err: ConnectError, responseHeader?: Headers): void {
  if (stream.destroyed || stream.closed || stream.headersSent) return;
  stream.respond({ ":status": 200, "content-type": "application/grpc+proto", ...plain(responseHeader) }, { waitForTrailers: true });
  const trailer = errorTrailer(err);
  stream.once("wantTrailers", () => stream.sendTrailers(trailer));
  stream.end();
}

function errorTrailer(err: ConnectError): Record<string, string> {
  const status = setTrailerStatus(new Headers(), err);
  // gRPC percent-encodes only bytes outside printable ASCII (and "%"); Connect's helper encodes
  // like encodeURIComponent, which clients that decode per the spec (grpc-js) show verbatim.
  status.set("grpc-message", percentEncode(err.rawMessage));
  return { ...plain(err.metadata), ...plain(status) };
}

function plain(h: Headers | undefined): Record<string, string> {
  const out: Record<string, string> = {};
  h?.forEach((v, k) => void (out[k] = v));
  return out;
}

function headerValue(v: string | string[] | undefined): string | null {
  if (v === undefined) return null;
  return Array.isArray(v) ? v.join(", ") : v;
}

/** gRPC's percent-encoding of grpc-message: UTF-8 bytes outside 0x20–0x7E, and "%", as %XX. */
export function percentEncode(message: string): string {
  let out = "";
  for (const b of Buffer.from(message, "utf8")) {
    out += b >= 0x20 && b <= 0x7e && b !== 0x25 ? String.fromCharCode(b) : `%${b.toString(16).toUpperCase().padStart(2, "0")}`;
  }
  return out;
}
