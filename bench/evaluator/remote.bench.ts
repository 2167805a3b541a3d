/**
 * Remote evaluation: throughput at saturation and latency at 70% of it, for Vane's flagd port
 * (gRPC h2c, served by lib/server/grpc-fast-path.ts), the flagd implementation as a bare connect-node
 * handler (what the fast path saves), Vane's main port (vane.evaluation.v1 with a server key's
 * token), Connect JSON over HTTP/1.1, and a no-op @grpc/grpc-js server, all driven by the same load generator (bench/evaluator/loadgen.ts)
 * in a separate process. `npm run bench:remote`.
 */
import { create, toBinary, toJsonString } from "@bufbuild/protobuf";
import * as os from "node:os";
import * as v1 from "#gen/flagd/evaluation/v1/evaluation_pb.js";
import * as v2 from "#gen/flagd/evaluation/v2/evaluation_pb.js";
import { EvaluateRequestSchema } from "#gen/vane/evaluation/v1/evaluation_service_pb.js";
import { cpuSeconds, runProcess, startProcess, stopProcess } from "./run.ts";

const seconds = Number(process.env.BENCH_SECONDS ?? 5);
const concurrency = Number(process.env.BENCH_CONCURRENCY ?? 64);
const connections = Number(process.env.BENCH_CONNECTIONS ?? 4);
const context = { targetingKey: "user-1", plan: "pro" };
const frame = (bytes: Uint8Array) => {
  const out = Buffer.alloc(5 + bytes.length);
  out.writeUInt32BE(bytes.length, 1);
  Buffer.from(bytes).copy(out, 5);
  return out.toString("base64");
};
const grpcV2 = frame(toBinary(v2.ResolveBooleanRequestSchema, create(v2.ResolveBooleanRequestSchema, { flagKey: "equals", context })));
const grpcMain = frame(toBinary(EvaluateRequestSchema, create(EvaluateRequestSchema, { flagKey: "equals", context })));
const jsonV1 = Buffer.from(toJsonString(v1.ResolveBooleanRequestSchema, create(v1.ResolveBooleanRequestSchema, { flagKey: "equals", context }))).toString(
  "base64",
);
const jsonMain = Buffer.from(toJsonString(EvaluateRequestSchema, create(EvaluateRequestSchema, { flagKey: "equals", context }))).toString("base64");

interface Result {
  rps: number;
  p50: number;
  p90: number;
  p99: number;
  max: number;
  errors: number;
  calls: number;
}
interface Scenario {
  name: string;
  server: "noop" | "vane" | "vane-h2" | "vane-dual";
  protocol: "grpc" | "connect";
  port: (info: Record<string, number | string>) => number;
  path: string;
  body: string;
  auth?: boolean;
}
const scenarios: Scenario[] = [
  {
    name: "no-op @grpc/grpc-js server (gRPC)",
    server: "noop",
    protocol: "grpc",
    port: (i) => i.grpc as number,
    path: "/flagd.evaluation.v2.Service/ResolveBoolean",
    body: grpcV2,
  },
  {
    name: "Vane flagd port, v2 ResolveBoolean (gRPC, fast path)",
    server: "vane",
    protocol: "grpc",
    port: (i) => i.flagd as number,
    path: "/flagd.evaluation.v2.Service/ResolveBoolean",
    body: grpcV2,
  },
  {
    name: "bare connect-node handler behind lib/server/dual-listener.ts (gRPC)",
    server: "vane-dual",
    protocol: "grpc",
    port: (i) => i.flagd as number,
    path: "/flagd.evaluation.v2.Service/ResolveBoolean",
    body: grpcV2,
  },
  {
    name: "bare connect-node handler on plain http2.createServer (gRPC)",
    server: "vane-h2",
    protocol: "grpc",
    port: (i) => i.flagd as number,
    path: "/flagd.evaluation.v2.Service/ResolveBoolean",
    body: grpcV2,
  },
  {
    name: "Vane main port, vane.evaluation.v1 Evaluate (gRPC, token, fast path)",
    server: "vane",
    protocol: "grpc",
    port: (i) => i.main as number,
    path: "/vane.evaluation.v1.EvaluationService/Evaluate",
    body: grpcMain,
    auth: true,
  },
  {
    name: "Vane flagd port, v1 ResolveBoolean (Connect JSON, HTTP/1.1)",
    server: "vane",
    protocol: "connect",
    port: (i) => i.flagd as number,
    path: "/flagd.evaluation.v1.Service/ResolveBoolean",
    body: jsonV1,
  },
  {
    name: "Vane main port, Evaluate (Connect JSON, HTTP/1.1, token)",
    server: "vane",
    protocol: "connect",
    port: (i) => i.main as number,
    path: "/vane.evaluation.v1.EvaluationService/Evaluate",
    body: jsonMain,
    auth: true,
  },
];

console.log(`machine: ${os.cpus().length} × ${os.cpus()[0].model}, ${Math.round(os.totalmem() / 2 ** 30)} GiB, Node ${process.version}`);
console.log(
  `load: ${concurrency} calls in flight over ${connections} connections, ${seconds} s per run (+1 s warm-up); latency runs at 70% of each scenario's saturation rate, open loop\n`,
);
const rows: string[] = [];
let baseline = 0;
for (const s of scenarios) {
  const { child, info } = await startProcess<Record<string, number | string>>("bench/evaluator/servers.ts", [s.server]);
  try {
    const base = {
      protocol: s.protocol,
      url: `http://127.0.0.1:${s.port(info)}`,
      path: s.path,
      body: s.body,
      headers: s.auth ? { authorization: `Bearer ${info.token}` } : {},
      seconds,
      connections,
    };
    const cpu0 = cpuSeconds(child.pid!);
    const sat = await runProcess<Result>("bench/evaluator/loadgen.ts", [JSON.stringify({ ...base, mode: "closed", concurrency, rate: 0 })]);
    const cpu = (cpuSeconds(child.pid!) - cpu0) / (seconds + 1);
    const lat = await runProcess<Result>("bench/evaluator/loadgen.ts", [
      JSON.stringify({ ...base, mode: "open", concurrency: 0, rate: Math.round(sat.rps * 0.7) }),
    ]);
    if (s.server === "noop") baseline = sat.rps;
    const ratio = baseline ? `${Math.round((100 * sat.rps) / baseline)}%` : "—";
    const row = `| ${s.name} | ${sat.rps} | ${ratio} | ${(cpu * 100).toFixed(0)}% | ${sat.p50} / ${sat.p99} | ${lat.rps} | ${lat.p50} / ${lat.p99} | ${sat.errors + lat.errors} |`;
    rows.push(row);
    console.log(row);
  } catch (err) {
    const row = `| ${s.name} | failed: ${(err as Error).message} | | | | | | |`;
    rows.push(row);
    console.log(row);
  } finally {
    await stopProcess(child);
  }
}
console.log("\n| scenario | saturation calls/s | vs no-op | server CPU | p50 / p99 at saturation (ms) | 70% load calls/s | p50 / p99 at 70% (ms) | errors |");
console.log("|---|---|---|---|---|---|---|---|");
for (const r of rows) console.log(r);
