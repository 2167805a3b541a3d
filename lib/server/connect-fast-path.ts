/**
 * A lean path for Connect unary calls (JSON and binary, POST, over HTTP/1.1 and HTTP/2) of the
 * hot methods, the Connect counterpart of grpc-fast-path.ts. Profiled under load
 * (docs/benchmarks.md), connect-node spent most of such a call on its machinery rather than on
 * the evaluation: the universal request/response adapters and their async-iterable pipelines, a
 * URL and several Headers objects, and a handler context whose AbortSignals are linked per call
 * and aborted at its end (a DOMException with a stack each time). Here the body is read straight
 * from the Node request, the call gets one AbortController (lib/server/fast-call.ts), and the
 * answer is written with one writeHead and end. Everything the client sees is Connect's own:
 * its content-type parsing, serialisation (with the server's JSON options), interceptors
 * (telemetry, auth, protovalidate), timeout header parsing, compression negotiation and
 * compressors, trailer-prefixed headers, error JSON and HTTP status mapping; and the corrections
 * of lib/server/connect-adapter.ts (a request that does not decode is INVALID_ARGUMENT naming the
 * field; every other INTERNAL is logged). Anything else — GET, compressed requests, streaming
 * methods, unknown content types — goes the normal way. Answers whose encodings were prepared
 * (lib/server/prepared-encodings.ts) are written without serialising.
 */
import type * as http from "node:http";
import type * as http2 from "node:http2";
import type { DescMessage, DescMethod } from "@bufbuild/protobuf";
import { Code, ConnectError, createContextValues, createMethodImplSpec, type ContextValues, type Interceptor } from "@connectrpc/connect";
import {
  compressionNegotiate,
  createAsyncIterable,
  createMethodSerializationLookup,
  invokeUnaryImplementation,
  readAllBytes,
  type Compression,
} from "@connectrpc/connect/protocol";
import {
  codeToHttpStatus,
  contentTypeUnaryJson,
  contentTypeUnaryProto,
  errorToJsonBytes,
  headerContentType,
  headerTimeout,
  headerUnaryAcceptEncoding,
  headerUnaryContentLength,
  headerUnaryEncoding,
  parseContentType,
  parseTimeout,
  trailerMux,
} from "@connectrpc/connect/protocol-connect";
import type { JsonReadOptions, JsonWriteOptions } from "@bufbuild/protobuf";
import type { Logger } from "#lib/process/logger.ts";
import { aborted, createCallFactory } from "#lib/server/fast-call.ts";
import { binaryOf, jsonOf } from "#lib/server/prepared-encodings.ts";
import { fromBinaryParseFailure, isBinaryParseFailure, receivedRequestBytes } from "#lib/server/request-decoding.ts";
import { internalErrorLogged, logServerFault } from "#lib/server/rpc-errors.ts";

type Req = http.IncomingMessage | http2.Http2ServerRequest;
type Res = http.ServerResponse | http2.Http2ServerResponse;

/** One unary method, its implementation and the handler options of its service. */
export interface FastConnectMethod {
  method: DescMethod & { methodKind: "unary" };
  // The implementation's type is checked where the ServiceImpl is built.
  impl: (req: any, ctx: any) => unknown; // eslint-disable-line @typescript-eslint/no-explicit-any
  /** Connect's compressMinBytes for this service (Connect's default: 1024). */
  compressMinBytes?: number;
  /** JSON options for this service, over the server's. */
  jsonOptions?: Partial<JsonReadOptions & JsonWriteOptions>;
}

/** Options for {@link createConnectFastPath}: those the server gives connect-node. */
export interface ConnectFastPathOptions {
  methods: FastConnectMethod[];
  /** As Connect applies them; the default deadline is this path's own. */
  interceptors: Interceptor[];
  defaultTimeoutMs: number;
  shutdownSignal: AbortSignal;
  maxTimeoutMs: number;
  readMaxBytes: number;
  jsonOptions: Partial<JsonReadOptions & JsonWriteOptions>;
  acceptCompression: Compression[];
  contextValues?: (req: Req) => ContextValues;
  logger: Logger;
}

/** Serves the request and returns true when it is a call for this path; false leaves it alone. */
export type ConnectFastPath = (req: Req, res: Res) => boolean;

interface Route {
  method: FastConnectMethod["method"];
  spec: ReturnType<typeof createMethodImplSpec>;
  serialization: ReturnType<typeof createMethodSerializationLookup>;
  compressMinBytes: number;
  /** Prepared JSON encodings assume Connect's default write options. */
  defaultJsonWrite: boolean;
  rpc: string;
}

export function createConnectFastPath(opts: ConnectFastPathOptions): ConnectFastPath {
  const log = opts.logger.child({ component: "rpc" });
  const newCall = createCallFactory(opts.shutdownSignal);
  const routes = new Map<string, Route>();
  for (const m of opts.methods) {
    const json = { ...opts.jsonOptions, ...m.jsonOptions };
    routes.set(`/${m.method.parent.typeName}/${m.method.name}`, {
      method: m.method,
      spec: createMethodImplSpec(m.method, m.impl as never),
      serialization: createMethodSerializationLookup(m.method, undefined, json, { readMaxBytes: opts.readMaxBytes, writeMaxBytes: 0xffffffff }),
      compressMinBytes: m.compressMinBytes ?? 1024,
      defaultJsonWrite: !json.alwaysEmitImplicit && !json.enumAsInteger && !json.useProtoFieldName,
      rpc: `${m.method.parent.typeName}/${m.method.name}`,
    });
  }

  const serve = async (req: Req, res: Res, route: Route, binary: boolean, chunks: Uint8Array[]) => {
    const requestHeader = new Headers();
    for (const [k, v] of Object.entries(req.headers)) if (k[0] !== ":" && v !== undefined) requestHeader.set(k, Array.isArray(v) ? v.join(", ") : v);
    const timeout = parseTimeout(requestHeader.get(headerTimeout), opts.maxTimeoutMs);
    const values = opts.contextValues?.(req) ?? createContextValues();
    const call = newCall({
      method: route.method,
      protocolName: "connect",
      url: `http://${req.headers.host ?? req.headers[":authority"] ?? "localhost"}${req.url}`,
      requestHeader,
      timeoutMs: timeout.timeoutMs ?? opts.defaultTimeoutMs,
      // Connect's words for the client's deadline; the server's default deadline's own otherwise.
      deadlineError: (ms) =>
        timeout.timeoutMs !== undefined
          ? new ConnectError("the operation timed out", Code.DeadlineExceeded)
          : new ConnectError(`the call took longer than ${ms} ms`, Code.DeadlineExceeded),
      values,
    });
    const { context } = call;
    context.responseHeader.set(headerContentType, binary ? contentTypeUnaryProto : contentTypeUnaryJson);
    const compression = compressionNegotiate(opts.acceptCompression, null, requestHeader.get(headerUnaryAcceptEncoding), headerUnaryAcceptEncoding);
    const onClose = () => call.controller.abort(new ConnectError("the client went away", Code.Canceled));
    res.once("close", onClose);
    let received: Uint8Array | undefined;
    if (binary) values.set(receivedRequestBytes, () => received);
    let status = 200;
    let body: Uint8Array;
    try {
      if (compression.error) throw compression.error;
      if (timeout.error) throw timeout.error;
      received = await readAllBytes(createAsyncIterable(chunks), opts.readMaxBytes, requestHeader.get(headerUnaryContentLength));
      const input = route.serialization.getI(binary).parse(received);
      const invoked = invokeUnaryImplementation(route.spec as Parameters<typeof invokeUnaryImplementation>[0], context, input as never, opts.interceptors);
      // The server's default deadline answers DEADLINE_EXCEEDED even if the implementation does
      // not watch its signal (as its interceptor does on the normal path); the client's own
      // deadline only aborts the signal, as in connect-node.
      const output = (await (timeout.timeoutMs === undefined ? Promise.race([invoked, aborted(call)]) : invoked)) as Parameters<typeof binaryOf>[1];
      const schema = route.method.output as DescMessage;
      body = binary ? binaryOf(schema, output) : route.defaultJsonWrite ? jsonOf(schema, output) : route.serialization.getO(false).serialize(output);
    } catch (e) {
      let error = e instanceof ConnectError ? e : new ConnectError("internal error", Code.Internal, undefined, undefined, e);
      // lib/server/connect-adapter.ts's corrections, for an uncompressed error answer.
      if (error.code === Code.Internal && !values.get(internalErrorLogged)) {
        if (isBinaryParseFailure(error)) error = fromBinaryParseFailure(route.method.input, binary ? received : undefined, error);
        else logServerFault(log, error, { rpc: route.rpc, values });
      }
      status = codeToHttpStatus(error.code);
      context.responseHeader.set(headerContentType, contentTypeUnaryJson);
      error.metadata.forEach((value, key) => context.responseHeader.set(key, value));
      body = errorToJsonBytes(error, opts.jsonOptions);
    } finally {
      res.off("close", onClose);
      call.end();
    }
    if (compression.response && body.byteLength >= route.compressMinBytes) {
      body = await compression.response.compress(body);
      context.responseHeader.set(headerUnaryEncoding, compression.response.name);
    }
    const header = trailerMux(context.responseHeader, context.responseTrailer);
    header.set(headerUnaryContentLength, String(body.byteLength));
    if (res.destroyed || res.headersSent) return;
    const out: Record<string, string> = {};
    header.forEach((v, k) => void (out[k] = v));
    res.writeHead(status, out);
    res.end(body);
  };

  return (req, res) => {
    if (req.method !== "POST") return false;
    const route = routes.get(req.url ?? "");
    if (route === undefined) return false;
    const type = parseContentType(typeof req.headers["content-type"] === "string" ? req.headers["content-type"] : null);
    if (type === undefined || type.stream) return false;
    const encoding = req.headers["content-encoding"];
    if (encoding !== undefined && encoding !== "identity") return false;
    const chunks: Uint8Array[] = [];
    let size = 0;
    // Past the limit only one more chunk is kept: enough for Connect's reader to refuse it.
    req.on("data", (chunk: Buffer) => {
      if (size <= opts.readMaxBytes) chunks.push(chunk);
      size += chunk.length;
    });
    req.once("end", () => {
      serve(req, res, route, type.binary, chunks).catch((err: unknown) => {
        log.warn({ err, rpc: route.rpc }, "writing an RPC response failed");
        if (!res.headersSent) res.writeHead(500);
        res.end();
      });
    });
    return true;
  };
}
