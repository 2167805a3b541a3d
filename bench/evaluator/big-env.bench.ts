/**
 * Big environments: an evaluator process started on one environment of 1,000 / 10,000 / 50,000
 * flags, timed from spawn to its first answer for the environment's last flag (remote
 * evaluation, gRPC), with its resident memory then. Two set-ups side by side in one run:
 *   nats — the snapshot as the flags service writes it (compressed, in chunks past one message)
 *          in a KV bucket on the local NATS, loaded through the KV watch;
 *   file — the same flags as a flagd file read from disk (the reference: no NATS, no decoding
 *          of protobuf, no decompression).
 * The ratio is nats / file (time and RSS; 1.0 = as cheap as reading the file).
 * `npm run bench:big-env` (BENCH_SIZES=1000,10000,50000, BENCH_RUNS=3; BENCH_VALUE_BYTES: the
 * largest value before a snapshot is chunked, default max_payload less 4 KiB as in the flags
 * service: a lower one takes the chunked path with flags that compress this well).
 */
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import * as os from "node:os";
import { join } from "node:path";
import { performance } from "node:perf_hooks";
import { readFileSync } from "node:fs";
import { toBinary } from "@bufbuild/protobuf";
import { createClient } from "@connectrpc/connect";
import { createGrpcTransport } from "@connectrpc/connect-node";
import { jetstream } from "@nats-io/jetstream";
import { Kvm } from "@nats-io/kv";
import { EvaluationService } from "#gen/vane/evaluation/v1/evaluation_service_pb.js";
import { EnvironmentSnapshotSchema } from "#gen/vane/flags/v1/snapshot_pb.js";
import { encodeSnapshot, parseEnvelope, putSnapshot } from "#lib/bus/snapshots.ts";
import type { FlagSetDefinition } from "#engine";
import { connectTestNats, deleteStreams, uniqueName } from "#test/support/harness.ts";
import { snapshotOf } from "../../services/evaluator/test/harness.ts";
import { startProcess, stopProcess } from "./run.ts";

const sizes = (process.env.BENCH_SIZES ?? "1000,10000,50000").split(",").map(Number);
const runs = Number(process.env.BENCH_RUNS ?? 3);

/** Boolean flags; every tenth one with a rule on the email. */
function flagSet(n: number): FlagSetDefinition {
  const flags: Record<string, unknown> = {};
  for (let i = 0; i < n; i++) {
    flags[`flag-${i}`] = {
      state: "ENABLED",
      variants: { on: true, off: false },
      defaultVariant: i % 2 ? "on" : "off",
      ...(i % 10 === 0 ? { targeting: { if: [{ in: [{ var: "email" }, [`vip${i}@example.com`]] }, "on", "off"] } } : {}),
    };
  }
  return { flags } as FlagSetDefinition;
}

const rssMb = (pid: number) => Number(/VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${pid}/status`, "utf8"))![1]) / 1024;

/** Spawns a server, waits until it answers for `flagKey`; returns the time that took and its RSS then. */
async function serve(args: string[], env: Record<string, string>, flagKey: string): Promise<{ ms: number; rss: number }> {
  const saved = { ...process.env };
  Object.assign(process.env, env);
  const t0 = performance.now();
  const { child, info } = await startProcess<{ main: number; token: string }>("bench/evaluator/servers.ts", args);
  process.env = saved;
  try {
    const client = createClient(
      EvaluationService,
      createGrpcTransport({
        baseUrl: `http://127.0.0.1:${info.main}`,
        interceptors: [
          (next) => (req) => {
            req.header.set("authorization", `Bearer ${info.token}`);
            return next(req);
          },
        ],
      }),
    );
    for (;;) {
      const ok = await client.evaluate({ flagKey }).then(
        () => true,
        () => false,
      );
      if (ok) break;
      if (performance.now() - t0 > 300_000) throw new Error(`${args.join(" ")} did not serve ${flagKey} within 5 minutes`);
      await new Promise((r) => setTimeout(r, 20));
    }
    const ms = performance.now() - t0;
    return { ms, rss: rssMb(child.pid!) };
  } finally {
    await stopProcess(child);
  }
}

const stats = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  return { min: s[0], median: s[Math.floor(s.length / 2)], max: s.at(-1)! };
};
const fmt = (x: { min: number; median: number; max: number }, digits = 0) => `${x.median.toFixed(digits)} (${x.min.toFixed(digits)}–${x.max.toFixed(digits)})`;

const nc = await connectTestNats();
const maxPayload = nc.info?.max_payload ?? 1 << 20;
const dir = await mkdtemp(join(os.tmpdir(), "vane-big-env-"));
console.log(`big environments: ${runs} runs per size; ${os.cpus().length} CPUs (${os.cpus()[0]?.model}); NATS max_payload ${maxPayload}`);
console.log(
  "flags | snapshot bytes | stored (compressed) | values | nats: serve ms | file: serve ms | ratio (min–max) | nats RSS MB | file RSS MB | RSS ratio",
);
try {
  for (const n of sizes) {
    const def = flagSet(n);
    const file = join(dir, `flags-${n}.json`);
    await writeFile(file, JSON.stringify(def));
    const bucket = uniqueName("bench_big");
    const kv = await new Kvm(jetstream(nc)).create(bucket, { history: 5, maxValueSize: 8 << 20 });
    const snapshot = toBinary(EnvironmentSnapshotSchema, snapshotOf(def, { environmentId: "bench", version: 1 }));
    const payload = encodeSnapshot(snapshot, { environmentId: "bench", version: 1n });
    await putSnapshot(kv, "bench", payload, { maxValueBytes: Number(process.env.BENCH_VALUE_BYTES ?? maxPayload - 4096), previousSeq: 0 });
    const stored = parseEnvelope((await kv.get("bench"))!.value)!;
    const values = stored.body.case === "chunks" ? `${stored.body.value.chunks.length} chunks + manifest` : "1 (inline)";
    const last = `flag-${n - 1}`;
    const nats: { ms: number; rss: number }[] = [];
    const local: { ms: number; rss: number }[] = [];
    for (let r = 0; r < runs; r++) {
      // Alternated, so a busy moment of the shared machine falls on both.
      nats.push(await serve(["vane-nats", bucket], {}, last));
      local.push(await serve(["vane"], { BENCH_FLAGD_FILE: file }, last));
    }
    const ratio = stats(nats.map((x, i) => x.ms / local[i].ms));
    const rssRatio = stats(nats.map((x, i) => x.rss / local[i].rss));
    console.log(
      [
        n,
        snapshot.length,
        payload.length,
        values,
        fmt(stats(nats.map((x) => x.ms))),
        fmt(stats(local.map((x) => x.ms))),
        fmt(ratio, 2),
        fmt(stats(nats.map((x) => x.rss))),
        fmt(stats(local.map((x) => x.rss))),
        fmt(rssRatio, 2),
      ].join(" | "),
    );
    await deleteStreams(nc, [`KV_${bucket}`]);
  }
} finally {
  await rm(dir, { recursive: true, force: true });
  await nc.drain();
}
