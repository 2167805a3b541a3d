/**
 * connect-node's Node.js adapter (`connectNodeAdapter`), with two corrections Connect's handlers
 * offer no option for:
 *
 * - A request whose protobuf binary does not decode is the caller's mistake: Connect answers
 *   INTERNAL "parse binary: …" before any interceptor runs; here it becomes INVALID_ARGUMENT
 *   naming the field that is not UTF-8, or the type the bytes do not encode
 *   (lib/server/request-decoding.ts), in every protocol (gRPC, gRPC-Web, Connect unary and streaming).
 * - Every INTERNAL is logged: those from handlers are logged by the error interceptor
 *   (lib/server/rpc-errors.ts); those Connect raises itself (serialising a response, say) are logged
 *   here, once.
 *
 * The status is read where each protocol carries it (gRPC trailers, the gRPC-Web trailer frame,
 * the Connect error body or end-stream message) with Connect's own codecs; other responses pass
 * through untouched.
 */
import type * as http from "node:http";
import type * as http2 from "node:http2";
import {
  Code,
  ConnectError,
  createConnectRouter,
  createContextValues,
  type ConnectRouter,
  type ConnectRouterOptions,
  type ContextValues,
} from "@connectrpc/connect";
import {
  createAsyncIterable,
  encodeEnvelope,
  type UniversalHandler,
  type UniversalServerRequest,
  type UniversalServerResponse,
} from "@connectrpc/connect/protocol";
import {
  codeToHttpStatus,
  createEndStreamSerialization,
  endStreamFlag,
  endStreamFromJson,
  errorFromJsonBytes,
  errorToJsonBytes,
} from "@connectrpc/connect/protocol-connect";
import { setTrailerStatus } from "@connectrpc/connect/protocol-grpc";
import { trailerFlag, trailerParse, trailerSerialize } from "@connectrpc/connect/protocol-grpc-web";
import { compressionBrotli, compressionGzip, universalRequestFromNodeRequest, universalResponseToNodeResponse } from "@connectrpc/connect-node";
import { ifNoneMatchNames } from "#lib/server/entity-tags.ts";
import { percentEncode } from "#lib/server/grpc-fast-path.ts";
import type { Logger } from "#lib/process/logger.ts";
import { fromBinaryParseFailure, isBinaryParseFailure, receivedRequestBytes } from "#lib/server/request-decoding.ts";
import { internalErrorLogged, logServerFault } from "#lib/server/rpc-errors.ts";

type NodeHandler = (req: http.IncomingMessage | http2.Http2ServerRequest, res: http.ServerResponse | http2.Http2ServerResponse) => void;

/** Options for {@link createConnectAdapter}: the router's, plus where to log. */
export interface ConnectAdapterOptions extends ConnectRouterOptions {
  routes: (router: ConnectRouter) => void;
  fallback: NodeHandler;
  logger: Logger;
  /** Context values for each request (e.g. the peer address); empty by default. */
  contextValues?: (req: http.IncomingMessage | http2.Http2ServerRequest) => ContextValues;
}

/** A Node request handler serving the routes' RPCs (see the module comment). */
export function createConnectAdapter(options: ConnectAdapterOptions): NodeHandler {
  const log = options.logger.child({ component: "rpc" });
  const router = createConnectRouter({ acceptCompression: [compressionGzip, compressionBrotli], ...options });
  options.routes(router);
  const paths = new Map<string, UniversalHandler>();
  for (const h of router.handlers) paths.set(h.requestPath, guard(h, log, options.readMaxBytes ?? 0xffffffff));
  return (req, res) => {
    const handler = paths.get((req.url ?? "").split("?", 1)[0]);
    if (!handler) return options.fallback(req, res);
    const uReq = universalRequestFromNodeRequest(req, res, undefined, options.contextValues?.(req) ?? createContextValues());
    handler(uReq)
      .then((uRes) => universalResponseToNodeResponse(uRes, res))
      .catch((reason: unknown) => {
        // Writing failed: the client went away (Aborted), nothing to answer.
        if (ConnectError.from(reason).code !== Code.Aborted)
          log.warn({ err: reason, rpc: `${handler.service.typeName}/${handler.method.name}` }, "writing an RPC response failed");
      });
  };
}

type Protocol = "grpc" | "grpc-web" | "connect" | "connect-stream";

function protocolOf(contentType: string): { protocol: Protocol; binary: boolean } {
  const binary = /^application\/(grpc(-web)?|proto|connect\+proto)(\+proto)?(;|$)/i.test(contentType);
  if (/^application\/grpc-web/i.test(contentType)) return { protocol: "grpc-web", binary };
  if (/^application\/grpc/i.test(contentType)) return { protocol: "grpc", binary };
  if (/^application\/connect\+/i.test(contentType)) return { protocol: "connect-stream", binary };
  return { protocol: "connect", binary };
}

const COMPRESSED = 0b00000001;

function guard(handler: UniversalHandler, logger: Logger, readMaxBytes: number): UniversalHandler {
  const { method } = handler;
  const rpc = `${handler.service.typeName}/${method.name}`;
  const singleRequest = method.methodKind === "unary" || method.methodKind === "server_streaming";
  const streamingResponse = method.methodKind === "server_streaming" || method.methodKind === "bidi_streaming";
  const guarded = async (req: UniversalServerRequest): Promise<UniversalServerResponse> => {
    const contentType = req.header.get("content-type") ?? "";
    const { protocol, binary } = protocolOf(contentType);
    // The request's bytes are kept (only while the call runs, and only for one message) to say
    // which field is wrong if they do not decode.
    const kept: Uint8Array[] | undefined = binary && singleRequest && isByteStream(req.body) ? [] : undefined;
    const received = () => (!kept ? undefined : protocol === "connect" ? (req.header.has("content-encoding") ? undefined : concat(kept)) : firstEnvelope(kept));
    if (kept) {
      req = { ...req, body: keeping(req.body as AsyncIterable<Uint8Array>, kept, readMaxBytes + 5) };
      req.contextValues?.set(receivedRequestBytes, received);
    }
    const res = await handler(req);
    /** The answer for a failed call: a request decode failure rewritten, any other INTERNAL logged. */
    const correct = (err: ConnectError): ConnectError | undefined => {
      if (err.code !== Code.Internal || req.contextValues?.get(internalErrorLogged)) return undefined;
      // Before any interceptor ran: the request did not decode.
      if (isBinaryParseFailure(err)) return fromBinaryParseFailure(method.input, received(), err);
      logServerFault(logger, err, { rpc, values: req.contextValues });
      return undefined;
    };
    switch (protocol) {
      case "grpc":
        return correctGrpc(res, correct, streamingResponse);
      case "grpc-web":
        return { ...res, body: res.body && mapFrames(res.body, trailerFlag, (data) => correctGrpcWebTrailer(data, correct)) };
      case "connect-stream":
        return { ...res, body: res.body && mapFrames(res.body, endStreamFlag, (data) => correctEndStream(data, correct)) };
      case "connect":
        if (res.status === 200) return req.method === "GET" ? notModified(req, res) : res;
        return correctConnectUnary(res, correct);
    }
  };
  return Object.assign(guarded, {
    requestPath: handler.requestPath,
    service: handler.service,
    method: handler.method,
    protocolNames: handler.protocolNames,
    allowedMethods: handler.allowedMethods,
    supportedContentType: handler.supportedContentType,
  });
}

type Correct = (err: ConnectError) => ConnectError | undefined;

/**
 * Connect GET (methods free of side effects) is plain HTTP caching: an answer whose ETag the
 * request's If-None-Match names is a 304 without a body. The handler has checked the header and
 * answered a small "not modified" message, which is dropped here.
 */
export function notModified(req: UniversalServerRequest, res: UniversalServerResponse): UniversalServerResponse {
  const etag = res.header?.get("etag");
  if (!etag || !ifNoneMatchNamesLeniently(req.header.get("if-none-match"), etag)) return res;
  const header = new Headers(res.header);
  for (const h of ["content-type", "content-length", "content-encoding"]) header.delete(h);
  return { status: 304, header };
}

function ifNoneMatchNamesLeniently(header: string | null, etag: string): boolean {
  try {
    return ifNoneMatchNames(header, etag);
  } catch {
    return false;
  }
}

/**
 * gRPC: the status is in the trailers, final once the body ends (at once for a unary call). Its
 * message is also re-encoded as gRPC specifies (Connect percent-encodes like encodeURIComponent,
 * so grpc-js, which decodes with decodeURI, showed "key%3A …").
 */
function correctGrpc(res: UniversalServerResponse, correct: Correct, streaming: boolean): UniversalServerResponse {
  const check = () => {
    const trailer = res.trailer;
    const status = trailer?.get("grpc-status");
    if (!trailer || status === null || status === undefined || status === "0") return;
    const message = safeDecode(trailer.get("grpc-message") ?? "");
    const answer = status === String(Code.Internal) ? correct(new ConnectError(message, Code.Internal)) : undefined;
    if (answer) {
      for (const key of ["grpc-status", "grpc-message", "grpc-status-details-bin"]) trailer.delete(key);
      setTrailerStatus(trailer, answer);
    }
    trailer.set("grpc-message", percentEncode(answer?.rawMessage ?? message));
  };
  if (!streaming || !res.body) {
    check();
    return res;
  }
  const body = res.body;
  return {
    ...res,
    body: (async function* () {
      yield* body;
      check();
    })(),
  };
}

function correctGrpcWebTrailer(data: Uint8Array, correct: Correct): Uint8Array | undefined {
  const trailer = trailerParse(data);
  if (trailer.get("grpc-status") !== String(Code.Internal)) return undefined;
  const answer = correct(new ConnectError(safeDecode(trailer.get("grpc-message") ?? ""), Code.Internal));
  if (!answer) return undefined;
  for (const key of ["grpc-status", "grpc-message", "grpc-status-details-bin"]) trailer.delete(key);
  return trailerSerialize(setTrailerStatus(trailer, answer));
}

function correctEndStream(data: Uint8Array, correct: Correct): Uint8Array | undefined {
  let end;
  try {
    end = endStreamFromJson(data);
  } catch {
    return undefined;
  }
  const answer = end.error && correct(end.error);
  return answer && createEndStreamSerialization({}).serialize({ metadata: end.metadata, error: answer });
}

/** Connect unary: an error is a JSON body with the HTTP status of its code. */
async function correctConnectUnary(res: UniversalServerResponse, correct: Correct): Promise<UniversalServerResponse> {
  if (!res.body || res.header?.has("content-encoding")) return res;
  const chunks: Uint8Array[] = [];
  for await (const chunk of res.body) chunks.push(chunk);
  const bytes = concat(chunks);
  const rebuilt = { ...res, body: createAsyncIterable([bytes]) };
  let err: ConnectError;
  try {
    err = errorFromJsonBytes(bytes, undefined, new ConnectError("", Code.Unknown));
  } catch {
    return rebuilt;
  }
  const answer = correct(err);
  if (!answer) return rebuilt;
  const body = errorToJsonBytes(answer, {});
  const header = new Headers(res.header);
  header.set("content-length", String(body.byteLength));
  return { ...res, status: codeToHttpStatus(answer.code), header, body: createAsyncIterable([body]) };
}

/**
 * The body's envelopes, each passed on as is, except an uncompressed one with `flag` (the status
 * frame), replaced by what `rewrite` returns for its data, if anything. Connect's handlers write
 * one envelope per chunk.
 */
async function* mapFrames(body: AsyncIterable<Uint8Array>, flag: number, rewrite: (data: Uint8Array) => Uint8Array | undefined): AsyncIterable<Uint8Array> {
  for await (const chunk of body) {
    const isStatus = chunk.byteLength >= 5 && (chunk[0] & flag) === flag && (chunk[0] & COMPRESSED) === 0;
    const replaced = isStatus ? rewrite(chunk.subarray(5)) : undefined;
    yield replaced ? encodeEnvelope(chunk[0], replaced) : chunk;
  }
}

function isByteStream(body: unknown): boolean {
  return typeof body === "object" && body !== null && Symbol.asyncIterator in body;
}

/** Passes the body on, keeping its chunks in `kept` up to `limit` bytes. */
async function* keeping(body: AsyncIterable<Uint8Array>, kept: Uint8Array[], limit: number): AsyncIterable<Uint8Array> {
  let size = 0;
  for await (const chunk of body) {
    size += chunk.byteLength;
    if (size <= limit) kept.push(chunk);
    yield chunk;
  }
}

/** The first enveloped message, when complete and uncompressed. */
function firstEnvelope(chunks: Uint8Array[]): Uint8Array | undefined {
  const bytes = concat(chunks);
  if (bytes.byteLength < 5 || (bytes[0] & COMPRESSED) !== 0) return undefined;
  const length = new DataView(bytes.buffer, bytes.byteOffset + 1, 4).getUint32(0);
  return bytes.byteLength >= 5 + length ? bytes.subarray(5, 5 + length) : undefined;
}

function concat(chunks: Uint8Array[]): Uint8Array {
  return chunks.length === 1 ? chunks[0] : Buffer.concat(chunks);
}

function safeDecode(s: string): string {
  try {
    return decodeURIComponent(s);
  } catch {
    return s;
  }
}
