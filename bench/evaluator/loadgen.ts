/**
 * The load generator (a separate process): unary calls over HTTP/2 (gRPC) or HTTP/1.1
 * (Connect JSON) with Node's own clients and nothing on top, so its overhead is the same
 * whatever the server. Two modes:
 *   closed — `concurrency` calls always in flight, for `seconds`: saturation throughput;
 *   open   — calls started at a fixed `rate` per second regardless of answers (latency from the
 *            scheduled start, so a slow server cannot hide queueing: no coordinated omission).
 * Prints one JSON line: { calls, errors, seconds, rps, p50, p90, p99, max } (latencies in ms).
 */
import * as http from "node:http";
import * as http2 from "node:http2";
import { performance } from "node:perf_hooks";

interface Args {
  protocol: "grpc" | "connect";
  url: string;
  path: string;
  body: string; // base64 of the request body (already framed for gRPC)
  headers: Record<string, string>;
  mode: "closed" | "open";
  concurrency: number;
  rate: number;
  seconds: number;
  connections: number;
  /** HTTP statuses that count as answered (Connect JSON; default 200 only). */
  okStatuses?: number[];
}
const a = JSON.parse(process.argv[2]) as Args;
const body = Buffer.from(a.body, "base64");
const latencies: number[] = [];
let errors = 0;
let done = 0;

type Send = (onDone: (ok: boolean) => void) => void;
let sender: Send;
let close: () => void;
if (a.protocol === "grpc") {
  const sessions = Array.from({ length: a.connections }, () => http2.connect(a.url));
  let next = 0;
  const headers = { ":method": "POST", ":path": a.path, "content-type": "application/grpc", te: "trailers", ...a.headers };
  sender = (onDone) => {
    const req = sessions[next++ % sessions.length].request(headers);
    let status = "";
    req.on("response", (h) => {
      if (h["grpc-status"] !== undefined) status = String(h["grpc-status"]);
    });
    req.on("trailers", (t) => (status = String(t["grpc-status"])));
    req.on("data", () => {});
    req.on("close", () => onDone(status === "0"));
    req.on("error", () => {});
    req.end(body);
  };
  close = () => sessions.forEach((s) => s.close());
} else {
  const u = new URL(a.url);
  const okStatuses = a.okStatuses ?? [200];
  const agent = new http.Agent({ keepAlive: true, maxSockets: a.connections });
  const headers = { "content-type": "application/json", "content-length": String(body.length), ...a.headers };
  sender = (onDone) => {
    const req = http.request({ host: u.hostname, port: u.port, path: a.path, method: "POST", agent, headers }, (res) => {
      res.on("data", () => {});
      res.on("end", () => onDone(okStatuses.includes(res.statusCode ?? 0)));
    });
    req.on("error", () => onDone(false));
    req.end(body);
  };
  close = () => agent.destroy();
}

const warmupMs = 1_000;
const start = performance.now();
const measureFrom = start + warmupMs;
const end = measureFrom + a.seconds * 1000;
const record = (t0: number, ok: boolean) => {
  const t = performance.now();
  if (t0 >= measureFrom && t0 < end) {
    if (ok) latencies.push(t - t0);
    else errors++;
    done++;
  }
};

await new Promise<void>((resolve) => {
  if (a.mode === "closed") {
    let inFlight = 0;
    const go = () => {
      if (performance.now() >= end) {
        if (inFlight === 0) resolve();
        return;
      }
      inFlight++;
      const t0 = performance.now();
      sender((ok) => {
        inFlight--;
        record(t0, ok);
        go();
      });
    };
    for (let i = 0; i < a.concurrency; i++) go();
  } else {
    const interval = 1000 / a.rate;
    let scheduled = start;
    let outstanding = 0;
    const tick = () => {
      const now = performance.now();
      while (scheduled <= now && scheduled < end) {
        const t0 = scheduled;
        outstanding++;
        sender((ok) => {
          outstanding--;
          record(t0, ok);
          if (performance.now() >= end && outstanding === 0) resolve();
        });
        scheduled += interval;
      }
      // A 1 ms timer, not setImmediate: a busy loop would steal the server's CPU on small machines.
      if (scheduled < end) setTimeout(tick, 1);
      else if (outstanding === 0) resolve();
    };
    tick();
  }
});
close();
latencies.sort((x, y) => x - y);
const q = (p: number) => Number((latencies[Math.min(latencies.length - 1, Math.floor(p * latencies.length))] ?? NaN).toFixed(3));
process.stdout.write(
  `${JSON.stringify({ calls: done, errors, seconds: a.seconds, rps: Math.round(latencies.length / a.seconds), p50: q(0.5), p90: q(0.9), p99: q(0.99), max: q(1) })}\n`,
);
process.exit(0);
