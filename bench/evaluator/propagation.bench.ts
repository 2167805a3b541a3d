/**
 * Propagation: a configuration change reaching 1,000 open Watch streams (vane.evaluation.v1,
 * gRPC, server-key token, a different targetingKey per stream), measured from the commit time the
 * message carries (`config_time`, the snapshot's create time) to its arrival; one machine, one
 * clock. Two set-ups in one run:
 *   flags — the whole system as `npm start` runs it: each change is an UpdateFlagEnvironment
 *           committed through the flags service (transactional outbox → KV → evaluator);
 *   kv    — the evaluator alone in its own process, snapshots written straight to the KV bucket:
 *           the evaluator's share of the path.
 * `npm run bench:propagation` (BENCH_STREAMS, BENCH_CHANGES, BENCH_SETUPS=flags,kv).
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
import { startProcess, stopProcess } from "./run.ts";

const streams = Number(process.env.BENCH_STREAMS ?? 1000);
const changes = Number(process.env.BENCH_CHANGES ?? 20);
const setups = (process.env.BENCH_SETUPS ?? "flags,kv").split(",");
const sessions = 10;

/** A running system to measure: where to watch, and how to commit change number `n`. */
interface Target {
  mainUrl: string;
  token: string;
  commit(n: number): Promise<void>;
  close(): Promise<void>;
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
  const { child, info } = await startProcess<{ main: number; token: string }>("bench/evaluator/servers.ts", ["vane-nats", bucket]);
  return {
    mainUrl: `http://127.0.0.1:${info.main}`,
    token: info.token,
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

async function measure(name: string, target: Target): Promise<string> {
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
      for await (const m of client.watch({ context: { targetingKey: `user-${i}` } }, { signal: abort.signal })) {
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
  for (let n = 1; n <= changes; n++) {
    await target.commit(n);
    const deadline = Date.now() + 5_000;
    const expected = first! + BigInt(n);
    while ((arrivals.get(expected)?.length ?? 0) < streams && Date.now() < deadline) await new Promise((r) => setTimeout(r, 5));
    const got = arrivals.get(expected)?.length ?? 0;
    if (got < streams) console.log(`${name}: change ${n} reached only ${got} of ${streams} streams within 5 s`);
    await new Promise((r) => setTimeout(r, 200));
  }
  abort.abort();
  await Promise.allSettled(readers);
  const latencies = [...arrivals.values()].flat().sort((a, b) => a - b);
  const firsts = [...arrivals.values()].map((l) => Math.min(...l)).sort((a, b) => a - b);
  const q = (p: number) => latencies[Math.min(latencies.length - 1, Math.floor(p * latencies.length))].toFixed(1);
  return `| ${name} | ${streams} | ${latencies.length} | ${firsts[Math.floor(firsts.length / 2)].toFixed(1)} | ${q(0.5)} | ${q(0.9)} | ${q(0.99)} | ${q(1)} |`;
}

console.log(`machine: ${os.cpus().length} × ${os.cpus()[0].model}, Node ${process.version}`);
console.log(`${streams} watch streams over ${sessions} HTTP/2 connections (gRPC), ${changes} changes 200 ms apart\n`);
const rows: string[] = [];
for (const s of setups) {
  const target = s === "flags" ? await flagsTarget() : await kvTarget();
  try {
    rows.push(await measure(s === "flags" ? "commit through the flags service (npm start)" : "snapshot put straight into KV (evaluator alone)", target));
    console.log(rows.at(-1));
  } finally {
    await target.close();
  }
}
console.log("\n| set-up | streams | deliveries | first stream reached (median ms) | p50 ms | p90 ms | p99 ms | max ms |");
console.log("|---|---|---|---|---|---|---|---|");
for (const r of rows) console.log(r);
process.exit(0);
