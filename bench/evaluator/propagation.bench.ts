/**
 * Propagation: a configuration change reaching 100 / 1,000 / 3,000 open Watch streams
 * (vane.evaluation.v1, gRPC, server-key token, a different targetingKey per stream), measured
 * from the commit time the message carries (`config_time`, the snapshot's create time) to its
 * arrival; one machine, one clock. Set-ups, side by side in each run:
 *   noop   — the reference: a bare node:http2 server writing one pre-encoded delta to every
 *            stream when triggered (watch-reference.ts): the floor of one message per stream here;
 *   deltas — the evaluator alone in its own process, snapshots written straight to the KV
 *            bucket, streams asking for deltas (WatchRequest.deltas);
 *   full   — the same, streams without deltas (the full state in every message);
 *   flags  — (not by default) the whole system as `npm start` runs it: each change committed
 *            through the flags service (transactional outbox → KV → evaluator), with deltas.
 * The evaluator's and the reference's event-loop delay is read over the run (a side port).
 * `npm run bench:propagation` (BENCH_STREAMS=100,1000,3000, BENCH_RUNS=3, BENCH_CHANGES=20,
 * BENCH_SETUPS=noop,deltas,full).
 */
import { setMaxListeners } from "node:events";
import * as os from "node:os";
import { performance } from "node:perf_hooks";
import { toBinary } from "@bufbuild/protobuf";
import { timestampMs } from "@bufbuild/protobuf/wkt";
import { createClient } from "@connectrpc/connect";
import { createGrpcTransport } from "@connectrpc/connect-node";
import { jetstream } from "@nats-io/jetstream";
import { Kvm } from "@nats-io/kv";
import { EvaluationService } from "#gen/vane/evaluation/v1/evaluation_service_pb.js";
import { EnvironmentSnapshotSchema } from "#gen/vane/flags/v1/snapshot_pb.js";
import { connectTestNats, deleteStreams, uniqueName } from "#test/support/harness.ts";
import { fixture, snapshotOf } from "../../services/evaluator/test/harness.ts";
import { adminSession, startVane } from "../../test/vane-process.ts";
import { cpuSeconds, startProcess, stopProcess } from "./run.ts";

const streamCounts = (process.env.BENCH_STREAMS ?? "100,1000,3000").split(",").map(Number);
const runs = Number(process.env.BENCH_RUNS ?? 3);
const changes = Number(process.env.BENCH_CHANGES ?? 20);
const setups = (process.env.BENCH_SETUPS ?? "noop,deltas,full").split(",");
const labels: Record<string, string> = {
  noop: "reference: bare node:http2, one pre-encoded delta written to every stream",
  deltas: "evaluator alone (snapshot put into KV), streams with deltas",
  full: "evaluator alone (snapshot put into KV), streams without deltas (full state)",
  flags: "commit through the flags service (npm start), streams with deltas",
};

/** A running system to measure: where to watch, how to commit change number `n`, its side port and process. */
interface Target {
  mainUrl: string;
  token: string;
  side?: number;
  pid?: number;
  commit(n: number): Promise<void>;
  close(): Promise<void>;
}

async function noopTarget(): Promise<Target> {
  const { child, info } = await startProcess<{ grpc: number; side: number }>("bench/evaluator/servers.ts", ["noop-watch"]);
  return {
    mainUrl: `http://127.0.0.1:${info.grpc}`,
    token: "none",
    side: info.side,
    pid: child.pid,
    commit: async () => void (await fetch(`http://127.0.0.1:${info.side}/trigger`)).json(),
    close: () => stopProcess(child),
  };
}

async function kvTarget(): Promise<Target> {
  const bucket = uniqueName("bench_snap");
  const nc = await connectTestNats();
  const kv = await new Kvm(jetstream(nc)).create(bucket, { history: 5 });
  const put = async (version: number) => {
    const def = structuredClone(fixture);
    (def.flags as Record<string, { defaultVariant?: string | null }>)["bool-static"].defaultVariant = version % 2 ? "on" : "off";
    await kv.put("bench", toBinary(EnvironmentSnapshotSchema, snapshotOf(def, { environmentId: "bench", version, createTimeMs: Date.now() })));
  };
  await put(1);
  const { child, info } = await startProcess<{ main: number; token: string; side: number }>("bench/evaluator/servers.ts", ["vane-nats", bucket]);
  return {
    mainUrl: `http://127.0.0.1:${info.main}`,
    token: info.token,
    side: info.side,
    pid: child.pid,
    commit: (n) => put(n + 1),
    async close() {
      await stopProcess(child);
      await deleteStreams(nc, [`KV_${bucket}`]);
      await nc.drain();
    },
  };
}

async function flagsTarget(): Promise<Target> {
  const vane = startVane([], { VANE_FLAGD_PORT: "off", VANE_FLAGD_SYNC_PORT: "off" });
  const started = await vane.started(60_000);
  const { call, accessToken, projectId, environmentId } = await adminSession(started, "development");
  const variants = [
    { key: "on", value: true },
    { key: "off", value: false },
  ];
  await call("vane.flags.v1.FlagService/CreateFlag", { projectId, key: "bench", name: "bench", type: "FLAG_TYPE_BOOLEAN", variants }, accessToken);
  let version = 0n;
  const update = async (defaultVariant: string) => {
    const r = await call<{ environment: { version: string } }>(
      "vane.flags.v1.FlagService/UpdateFlagEnvironment",
      { environmentId, flagKey: "bench", expectedVersion: String(version), enabled: true, defaultVariant },
      accessToken,
    );
    version = BigInt(r.environment.version);
  };
  await update("off");
  const { secret } = await call<{ secret: string }>(
    "vane.identity.v1.IdentityService/CreateApiKey",
    { environmentId, kind: "API_KEY_KIND_SERVER", name: "bench" },
    accessToken,
  );
  const { accessToken: token } = await call<{ accessToken: string }>("vane.identity.v1.AuthService/ExchangeApiKey", { apiKey: secret });
  return { mainUrl: started.baseUrl, token, commit: (n) => update(n % 2 ? "on" : "off"), close: () => vane.cleanup() };
}

interface Result {
  deliveries: number;
  missed: number;
  first: number;
  p50: number;
  p90: number;
  p99: number;
  max: number;
  /** The server's event-loop delay over the changes (ms); undefined without a side port. */
  loop?: { p99: number; max: number };
  /** The server process's CPU time per change (ms): what the fan-out costs, whatever else the machine runs. */
  cpuPerChange?: number;
}

async function measure(target: Target, streams: number, deltas: boolean): Promise<Result> {
  // About 100 streams per HTTP/2 connection, as many clients would spread them.
  const sessions = Math.max(10, Math.ceil(streams / 100));
  const transports = Array.from({ length: sessions }, () =>
    createGrpcTransport({ baseUrl: target.mainUrl, interceptors: [(next) => (req) => (req.header.set("authorization", `Bearer ${target.token}`), next(req))] }),
  );
  const arrivals = new Map<bigint, number[]>(); // config version → latency of each delivery (ms)
  const abort = new AbortController();
  setMaxListeners(0, abort.signal); // every stream listens to it
  let open = 0;
  let first: bigint | undefined;
  const readers = Array.from({ length: streams }, async (_, i) => {
    const client = createClient(EvaluationService, transports[i % sessions]);
    let opened = false;
    try {
      for await (const m of client.watch({ context: { targetingKey: `user-${i}` }, deltas }, { signal: abort.signal })) {
        const now = performance.timeOrigin + performance.now();
        if (!opened) {
          opened = true;
          open++;
          first ??= m.version;
          continue;
        }
        const list = arrivals.get(m.version) ?? arrivals.set(m.version, []).get(m.version)!;
        list.push(now - timestampMs(m.configTime!));
      }
    } catch {
      // aborted at the end
    }
  });
  while (open < streams) await new Promise((r) => setTimeout(r, 50));
  const loop = async () => (target.side ? ((await (await fetch(`http://127.0.0.1:${target.side}/event-loop`)).json()) as Result["loop"]) : undefined);
  await loop(); // resets it
  const cpu = () => (target.pid ? cpuSeconds(target.pid) : NaN);
  const cpuBefore = cpu();
  let missed = 0;
  for (let n = 1; n <= changes; n++) {
    await target.commit(n);
    const deadline = Date.now() + 5_000;
    const expected = first! + BigInt(n);
    while ((arrivals.get(expected)?.length ?? 0) < streams && Date.now() < deadline) await new Promise((r) => setTimeout(r, 5));
    missed += streams - (arrivals.get(expected)?.length ?? 0);
    await new Promise((r) => setTimeout(r, 200));
  }
  const loopDelay = await loop();
  // Includes the 200 ms pauses, in which an idle server uses next to nothing.
  const cpuPerChange = ((cpu() - cpuBefore) * 1000) / changes;
  abort.abort();
  await Promise.allSettled(readers);
  const latencies = [...arrivals.values()].flat().sort((a, b) => a - b);
  const firsts = [...arrivals.values()].map((l) => Math.min(...l)).sort((a, b) => a - b);
  const q = (p: number) => latencies[Math.min(latencies.length - 1, Math.floor(p * latencies.length))];
  return {
    deliveries: latencies.length,
    missed,
    first: firsts[Math.floor(firsts.length / 2)],
    p50: q(0.5),
    p90: q(0.9),
    p99: q(0.99),
    max: q(1),
    loop: loopDelay,
    cpuPerChange: Number.isNaN(cpuPerChange) ? undefined : cpuPerChange,
  };
}

const targets: Record<string, () => Promise<Target>> = { noop: noopTarget, deltas: kvTarget, full: kvTarget, flags: flagsTarget };
const f1 = (x: number | undefined) => (x === undefined ? "—" : x.toFixed(1));
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
const spread = (xs: number[], digits = 1) => {
  const s = [...xs].sort((a, b) => a - b);
  return `${s[0].toFixed(digits)} / **${median(s).toFixed(digits)}** / ${s[s.length - 1].toFixed(digits)}`;
};

console.log(
  `machine: ${os.cpus().length} × ${os.cpus()[0].model}, Node ${process.version}, load ${os
    .loadavg()
    .map((l) => l.toFixed(1))
    .join(" ")}`,
);
console.log(`${streamCounts.join(" / ")} watch streams (gRPC, ~100 per HTTP/2 connection), ${changes} changes 200 ms apart, ${runs} runs\n`);
const results = new Map<string, Result[]>(); // `${setup} ${streams}` → one per run
console.log(
  "| run | set-up | streams | deliveries | missed | first stream (ms) | p50 ms | p90 ms | p99 ms | max ms | server loop delay p99 / max ms | server CPU ms per change |",
);
console.log("|---|---|---|---|---|---|---|---|---|---|---|---|");
for (let run = 1; run <= runs; run++) {
  for (const streams of streamCounts) {
    for (const s of setups) {
      const target = await targets[s]();
      try {
        const r = await measure(target, streams, s !== "full");
        const key = `${s} ${streams}`;
        results.set(key, [...(results.get(key) ?? []), r]);
        console.log(
          `| ${run} | ${s} | ${streams} | ${r.deliveries} | ${r.missed} | ${f1(r.first)} | ${f1(r.p50)} | ${f1(r.p90)} | ${f1(r.p99)} | ${f1(r.max)} | ${f1(r.loop?.p99)} / ${f1(r.loop?.max)} | ${f1(r.cpuPerChange)} |`,
        );
      } finally {
        await target.close();
      }
    }
  }
}
console.log("\nSummary, min / **median** / max over the runs (ratio: the set-up's p99 ÷ the reference's p99 in the same run):\n");
console.log("| set-up | streams | p99 ms | p50 ms | ratio to reference (p99) | server loop delay max ms | server CPU ms per change |");
console.log("|---|---|---|---|---|---|---|");
for (const streams of streamCounts) {
  for (const s of setups) {
    const rs = results.get(`${s} ${streams}`) ?? [];
    if (rs.length === 0) continue;
    const ref = results.get(`noop ${streams}`);
    const ratios = ref && s !== "noop" ? rs.map((r, i) => r.p99 / ref[i].p99) : undefined;
    const loops = rs.flatMap((r) => (r.loop ? [r.loop.max] : []));
    const cpus = rs.flatMap((r) => (r.cpuPerChange === undefined ? [] : [r.cpuPerChange]));
    console.log(
      `| ${labels[s]} | ${streams} | ${spread(rs.map((r) => r.p99))} | ${spread(rs.map((r) => r.p50))} | ${ratios ? `${spread(ratios, 2)}×` : "—"} | ${loops.length ? spread(loops) : "—"} | ${cpus.length ? spread(cpus) : "—"} |`,
    );
  }
}
process.exit(0);
