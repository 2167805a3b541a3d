/**
 * Remote evaluation: throughput at saturation and latency at 70% of it, for Vane's flagd port
 * (gRPC h2c, served by lib/server/grpc-fast-path.ts), the flagd implementation as a bare connect-node
 * handler (what the fast path saves), Vane's main port (vane.evaluation.v1 with a server key's
 * token), Connect JSON over HTTP/1.1, and two references doing no work: a @grpc/grpc-js server
 * (for gRPC) and a node:http server answering the same JSON bytes (for Connect JSON). All are
 * driven by the same load generator (bench/evaluator/loadgen.ts) in a separate process, in
 * BENCH_ROUNDS rounds (default 3) that each run every scenario, so each ratio to its reference is
 * taken within one round and reported as min / median / max. Latency at 70% is measured in the
 * first round only. `npm run bench:remote`.
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
const rounds = Number(process.env.BENCH_ROUNDS ?? 3);
// BENCH_SCENARIOS=<regexp>: only the scenarios whose name matches (references included).
const only = process.env.BENCH_SCENARIOS ? new RegExp(process.env.BENCH_SCENARIOS) : undefined;
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
  server: "noop" | "noop-http" | "vane" | "vane-h2" | "vane-dual";
  protocol: "grpc" | "connect";
  port: (info: Record<string, number | string>) => number;
  path: string;
  body: string;
  auth?: boolean;
}
const allScenarios: Scenario[] = [
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
    name: "no-op node:http server answering the same JSON (Connect JSON, HTTP/1.1)",
    server: "noop-http",
    protocol: "connect",
    port: (i) => i.http as number,
    path: "/vane.evaluation.v1.EvaluationService/Evaluate",
    body: jsonMain,
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

const scenarios = allScenarios.filter((s) => !only || s.server.startsWith("noop") || only.test(s.name));

console.log(`machine: ${os.cpus().length} × ${os.cpus()[0].model}, ${Math.round(os.totalmem() / 2 ** 30)} GiB, Node ${process.version}`);
console.log(
  `load: ${concurrency} calls in flight over ${connections} connections, ${seconds} s per run (+1 s warm-up), ${rounds} rounds; latency in round 1 at 70% of each scenario's saturation rate, open loop\n`,
);

/** What Vane's main port answers to the Connect JSON Evaluate: the no-op HTTP server answers the same bytes. */
async function vaneAnswer(): Promise<string> {
  const { child, info } = await startProcess<Record<string, number | string>>("bench/evaluator/servers.ts", ["vane"]);
  try {
    const res = await fetch(`http://127.0.0.1:${info.main}/vane.evaluation.v1.EvaluationService/Evaluate`, {
      method: "POST",
      headers: { "content-type": "application/json", authorization: `Bearer ${info.token}` },
      body: Buffer.from(jsonMain, "base64"),
    });
    if (res.status !== 200) throw new Error(`Evaluate answered ${res.status}`);
    return Buffer.from(await res.arrayBuffer()).toString("base64");
  } finally {
    await stopProcess(child);
  }
}
const answer = await vaneAnswer();

interface Measured {
  sat: Result;
  lat?: Result;
  cpu: number;
}
const measured = new Map<Scenario, Measured[]>(scenarios.map((s) => [s, []]));
for (let round = 0; round < rounds; round++) {
  for (const s of scenarios) {
    const { child, info } = await startProcess<Record<string, number | string>>(
      "bench/evaluator/servers.ts",
      s.server === "noop-http" ? [s.server, answer] : [s.server],
    );
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
      const lat =
        round === 0
          ? await runProcess<Result>("bench/evaluator/loadgen.ts", [JSON.stringify({ ...base, mode: "open", concurrency: 0, rate: Math.round(sat.rps * 0.7) })])
          : undefined;
      measured.get(s)!.push({ sat, lat, cpu });
      console.log(`round ${round + 1}: ${s.name}: ${sat.rps} calls/s, ${sat.errors} errors`);
    } catch (err) {
      console.log(`round ${round + 1}: ${s.name}: failed: ${(err as Error).message}`);
    } finally {
      await stopProcess(child);
    }
  }
}

const sorted = (xs: number[]) => [...xs].sort((a, b) => a - b);
const range = (xs: number[], f: (x: number) => string) => {
  const s = sorted(xs);
  return s.length === 0 ? "—" : `${f(s[0])} / **${f(s[Math.floor(s.length / 2)])}** / ${f(s.at(-1)!)}`;
};
const reference = (s: Scenario) => scenarios.find((r) => r.protocol === s.protocol && r.server.startsWith("noop"))!;
console.log(
  "\n| scenario | saturation calls/s (min / **median** / max) | vs its no-op reference, per round (min / **median** / max) | server CPU | p50 / p99 at saturation (ms, round 1) | 70% load calls/s | p50 / p99 at 70% (ms) | errors |",
);
console.log("|---|---|---|---|---|---|---|---|");
for (const s of scenarios) {
  const m = measured.get(s)!;
  const ref = measured.get(reference(s))!;
  const ratios = m.flatMap((x, i) => (ref[i] ? [x.sat.rps / ref[i].sat.rps] : []));
  const first = m[0];
  const errors = m.reduce((n, x) => n + x.sat.errors + (x.lat?.errors ?? 0), 0);
  console.log(
    `| ${s.name} | ${range(
      m.map((x) => x.sat.rps),
      (x) => x.toFixed(0),
    )} | ${range(ratios, (x) => x.toFixed(2))} | ${range(
      m.map((x) => x.cpu * 100),
      (x) => `${x.toFixed(0)}%`,
    )} | ${first ? `${first.sat.p50} / ${first.sat.p99}` : "—"} | ${first?.lat?.rps ?? "—"} | ${first?.lat ? `${first.lat.p50} / ${first.lat.p99}` : "—"} | ${errors} |`,
  );
}
