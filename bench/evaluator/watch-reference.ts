/**
 * For propagation.bench.ts, run inside a server process: the event loop's delay, read and reset
 * over a side HTTP port, and the reference Watch server — a bare `node:http2` server that holds
 * the gRPC Watch streams and, when triggered, writes one pre-encoded delta (one flag, the size of
 * Vane's) to every stream at once: no evaluation, no per-stream work beyond the write.
 */
import * as http from "node:http";
import * as http2 from "node:http2";
import { monitorEventLoopDelay } from "node:perf_hooks";
import { create, toBinary } from "@bufbuild/protobuf";
import { timestampFromMs } from "@bufbuild/protobuf/wkt";
import { EvaluationSchema, Reason, WatchResponseSchema } from "#gen/vane/evaluation/v1/evaluation_service_pb.js";

/** Serves GET /event-loop (delay since the last read, in ms; resets) and anything `more` handles. */
export async function serveSidePort(more?: (url: URL) => object | undefined): Promise<number> {
  const delay = monitorEventLoopDelay({ resolution: 5 });
  delay.enable();
  const server = http.createServer((req, res) => {
    const url = new URL(req.url ?? "/", "http://side");
    const body = url.pathname === "/event-loop" ? { p50: delay.percentile(50) / 1e6, p99: delay.percentile(99) / 1e6, max: delay.max / 1e6 } : more?.(url);
    if (url.pathname === "/event-loop") delay.reset();
    res.writeHead(body ? 200 : 404, { "content-type": "application/json" }).end(JSON.stringify(body ?? {}));
  });
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  return (server.address() as { port: number }).port;
}

function frame(version: number, value: boolean): Buffer {
  const evaluation = create(EvaluationSchema, {
    flagKey: "bool-static",
    value: { kind: { case: "boolValue", value } },
    variant: value ? "on" : "off",
    reason: Reason.STATIC,
    metadata: { flagSetId: "fixture", version: String(version) },
  });
  const message = create(WatchResponseSchema, {
    evaluations: [evaluation],
    version: BigInt(version),
    changedFlagKeys: ["bool-static"],
    configTime: timestampFromMs(Date.now()),
    delta: true,
  });
  const bytes = toBinary(WatchResponseSchema, message);
  const out = Buffer.allocUnsafe(5 + bytes.length);
  out[0] = 0;
  out.writeUInt32BE(bytes.length, 1);
  out.set(bytes, 5);
  return out;
}

/** Starts the reference server; GET /trigger on the side port sends the next version to every stream. */
export async function startReferenceWatch(): Promise<{ grpc: number; side: number }> {
  const streams = new Set<http2.ServerHttp2Stream>();
  let version = 1;
  const server = http2.createServer();
  server.on("stream", (stream) => {
    stream.on("data", () => {});
    stream.on("error", () => {});
    stream.respond({ ":status": 200, "content-type": "application/grpc+proto" });
    stream.write(frame(version, false));
    streams.add(stream);
    stream.once("close", () => streams.delete(stream));
  });
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  const side = await serveSidePort((url) => {
    if (url.pathname !== "/trigger") return undefined;
    version++;
    const f = frame(version, version % 2 === 0);
    for (const s of streams) s.write(f);
    return { version, streams: streams.size };
  });
  return { grpc: (server.address() as { port: number }).port, side };
}
