/**
 * Propagation: a snapshot written to the KV bucket reaching 1,000 open Watch streams
 * (vane.evaluation.v1, gRPC). The evaluator runs in its own process on the local NATS; this
 * process holds the streams and writes the snapshots, so commit time (the snapshot's
 * create_time, set just before the put) and delivery time come from one clock.
 * `npx tsx bench/evaluator/propagation.bench.ts` (BENCH_STREAMS, BENCH_CHANGES).
 */
import * as os from "node:os";
import { performance } from "node:perf_hooks";
import { timestampMs } from "@bufbuild/protobuf/wkt";
import { toBinary } from "@bufbuild/protobuf";
import { createClient } from "@connectrpc/connect";
import { createGrpcTransport } from "@connectrpc/connect-node";
import { Kvm } from "@nats-io/kv";
import { jetstream } from "@nats-io/jetstream";
import { EvaluationService } from "#gen/vane/evaluation/v1/evaluation_service_pb.js";
import { EnvironmentSnapshotSchema } from "#gen/vane/flags/v1/snapshot_pb.js";
import { connectTestNats, deleteStreams, uniqueName } from "#lib/test-support.ts";
import { fixture, snapshotOf } from "../../services/evaluator/test/harness.ts";
import { startProcess, stopProcess } from "./run.ts";

const streams = Number(process.env.BENCH_STREAMS ?? 1000);
const changes = Number(process.env.BENCH_CHANGES ?? 20);
const sessions = 10;
const bucket = uniqueName("bench_snap");
const nc = await connectTestNats();
const kv = await new Kvm(jetstream(nc)).create(bucket, { history: 5 });
const put = (version: number) => {
  const def = structuredClone(fixture);
  (def.flags as Record<string, { defaultVariant?: string | null }>)["bool-static"].defaultVariant = version % 2 ? "on" : "off";
  const s = snapshotOf(def, { environmentId: "bench", version, createTimeMs: Date.now() });
  return { commitMs: timestampMs(s.createTime!), done: kv.put("bench", toBinary(EnvironmentSnapshotSchema, s)) };
};
await put(1).done;
const { child, info } = await startProcess<{ main: number; token: string }>("bench/evaluator/servers.ts", ["vane-nats", bucket]);
try {
  const transports = Array.from({ length: sessions }, () =>
    createGrpcTransport({ baseUrl: `http://127.0.0.1:${info.main}`, interceptors: [(next) => (req) => (req.header.set("authorization", `Bearer ${info.token}`), next(req))] }),
  );
  const arrivals = new Map<number, number[]>(); // version → delivery times (epoch ms)
  const abort = new AbortController();
  let open = 0;
  const readers = Array.from({ length: streams }, async (_, i) => {
    const client = createClient(EvaluationService, transports[i % sessions]);
    try {
      for await (const m of client.watch({ context: { targetingKey: `user-${i}` } }, { signal: abort.signal })) {
        const v = Number(m.version);
        if (v === 1) open++;
        else (arrivals.get(v) ?? arrivals.set(v, []).get(v)!).push(performance.timeOrigin + performance.now());
      }
    } catch {
      // aborted at the end
    }
  });
  while (open < streams) await new Promise((r) => setTimeout(r, 50));
  const latencies: number[] = [];
  const firsts: number[] = [];
  for (let v = 2; v < 2 + changes; v++) {
    const { commitMs, done } = put(v);
    await done;
    const deadline = Date.now() + 5_000;
    while ((arrivals.get(v)?.length ?? 0) < streams && Date.now() < deadline) await new Promise((r) => setTimeout(r, 5));
    const got = arrivals.get(v) ?? [];
    if (got.length < streams) console.log(`version ${v}: only ${got.length} of ${streams} streams got it within 5 s`);
    for (const t of got) latencies.push(t - commitMs);
    if (got.length) firsts.push(Math.min(...got) - commitMs);
    await new Promise((r) => setTimeout(r, 200));
  }
  abort.abort();
  await Promise.allSettled(readers);
  latencies.sort((a, b) => a - b);
  const q = (p: number) => latencies[Math.min(latencies.length - 1, Math.floor(p * latencies.length))].toFixed(1);
  console.log(`machine: ${os.cpus().length} × ${os.cpus()[0].model}, Node ${process.version}`);
  console.log(`${streams} watch streams over ${sessions} HTTP/2 connections, ${changes} changes, ${latencies.length} deliveries`);
  firsts.sort((a, b) => a - b);
  console.log(`first stream reached after (median over changes): ${firsts[Math.floor(firsts.length / 2)].toFixed(1)} ms`);
  console.log(`commit → delivery: p50 ${q(0.5)} ms, p90 ${q(0.9)} ms, p99 ${q(0.99)} ms, max ${q(1)} ms`);
} finally {
  await stopProcess(child);
  await deleteStreams(nc, [`KV_${bucket}`]);
  await nc.drain();
}
