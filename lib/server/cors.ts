/**
 * CORS for browser clients (Connect-Web, gRPC-Web), using connect's lists of the headers
 * each protocol needs. Origins are an allow-list; "*" allows any origin without credentials.
 */
import type * as http from "node:http";
import type * as http2 from "node:http2";
import { cors as connectCors } from "@connectrpc/connect";

// W3C trace context, so pages instrumented with OpenTelemetry continue their traces here.
// OFREP adds its credential header and conditional bulk requests (If-None-Match → ETag).
const allowHeaders = [
  ...connectCors.allowedHeaders,
  "Authorization",
  "Flagd-Selector",
  "X-API-Key",
  "If-None-Match",
  "Traceparent",
  "Tracestate",
  "Baggage",
].join(", ");
const exposeHeaders = [...connectCors.exposedHeaders, "Retry-After", "ETag"].join(", ");
const allowMethods = connectCors.allowedMethods.join(", ");

type Req = http.IncomingMessage | http2.Http2ServerRequest;
type Res = http.ServerResponse | http2.Http2ServerResponse;

/**
 * Applies CORS headers; returns true when the request was a preflight and has been answered.
 */
export function applyCors(origins: readonly string[], req: Req, res: Res): boolean {
  const origin = req.headers.origin;
  if (typeof origin !== "string" || origins.length === 0) return false;
  const anyOrigin = origins.includes("*");
  if (!anyOrigin && !origins.includes(origin)) return false;
  res.setHeader("Access-Control-Allow-Origin", anyOrigin ? "*" : origin);
  if (!anyOrigin) res.setHeader("Vary", "Origin");
  res.setHeader("Access-Control-Expose-Headers", exposeHeaders);
  if (req.method === "OPTIONS" && req.headers["access-control-request-method"]) {
    res.setHeader("Access-Control-Allow-Methods", allowMethods);
    res.setHeader("Access-Control-Allow-Headers", allowHeaders);
    res.setHeader("Access-Control-Max-Age", "7200");
    res.writeHead(204);
    res.end();
    return true;
  }
  return false;
}
