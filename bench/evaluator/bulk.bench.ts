/**
 * Bulk evaluation (vane.evaluation.v1 EvaluateAll with a server key's token) at 20, 200 and 2,000
 * flags (bench/evaluator/many-flags.ts: a quarter static, the rest targeting), side by side in
 * each round: "full" is the evaluator with its cache of answers turned off
 * (VANE_BULK_CACHE_ENTRIES=0: every call evaluates and encodes), "repeated" the same context
 * against the default cache, "revalidate" sends the tag of that answer and gets `not_modified`.
 * Over gRPC (the main port's fast path) and Connect JSON over HTTP/1.1 (POST). Ratios to "full"
 * are taken per round and reported as min / median / max. `npm run bench:bulk` (BENCH_SECONDS,
 * BENCH_ROUNDS, BENCH_CONCURRENCY, BENCH_CONNECTIONS, BENCH_FLAG_COUNTS such as "20,200").
 */
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import * as os from "node:os";
import { join } from "node:path";
import { create, toBinary, toJsonString } from "@bufbuild/protobuf";
import { EvaluateAllRequestSchema } from "#gen/vane/evaluation/v1/evaluation_service_pb.js";
import { manyFlags } from "./many-flags.ts";
import { runProcess, startProcess, stopProcess } from "./run.ts";

const seconds = Number(process.env.BENCH_SECONDS ?? 3);
const rounds = Number(process.env.BENCH_ROUNDS ?? 3);
const concurrency = Number(process.env.BENCH_CONCURRENCY ?? 32);
const connections = Number(process.env.BENCH_CONNECTIONS ?? 4);
const counts = (process.env.BENCH_FLAG_COUNTS ?? "20,200,2000").split(",").map(Number);
const context = { targetingKey: "user-1", plan: "pro", version: "2.1.0" };
const PATH = "/vane.evaluation.v1.EvaluationService/EvaluateAll";

interface Result {
  rps: number;
  p50: number;
  p99: number;
  errors: number;
}
type Protocol = "grpc" | "connect";
const request = (protocol: Protocol, ifNoneMatch = "") => {
  const m = create(EvaluateAllRequestSchema, { context, ifNoneMatch });
  if (protocol === "connect") return Buffer.from(toJsonString(EvaluateAllRequestSchema, m)).toString("base64");
  const bytes = toBinary(EvaluateAllRequestSchema, m);
  const out = Buffer.alloc(5 + bytes.length);
  out.writeUInt32BE(bytes.length, 1);
  out.set(bytes, 5);
  return out.toString("base64");
};

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
const fmt = (xs: number[], digits = 0) => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length === 0 ? "—" : `${s[0].toFixed(digits)} / **${median(s).toFixed(digits)}** / ${s.at(-1)!.toFixed(digits)}`;
};

console.log(`machine: ${os.cpus().length} × ${os.cpus()[0].model}, ${Math.round(os.totalmem() / 2 ** 30)} GiB, Node ${process.version}`);
console.log(`load: ${concurrency} calls in flight over ${connections} connections, ${seconds} s per run (+1 s warm-up), ${rounds} rounds\n`);

const dir = mkdtempSync(join(os.tmpdir(), "vane-bulk-bench-"));
const rows: string[] = [];
try {
  for (const n of counts) {
    const file = join(dir, `flags-${n}.json`);
    writeFileSync(file, manyFlags(n));
    process.env.BENCH_FLAGD_FILE = file;
    const runs: Record<string, Result[]> = {};
    let bytes = 0;
    for (let round = 0; round < rounds; round++) {
      for (const cache of ["0", "10000"]) {
        process.env.BENCH_BULK_CACHE_ENTRIES = cache;
        const { child, info } = await startProcess<Record<string, number | string>>("bench/evaluator/servers.ts", ["vane"]);
        try {
          const url = `http://127.0.0.1:${info.main}`;
          const authorization = `Bearer ${info.token}`;
          const first = await fetch(`${url}${PATH}`, {
            method: "POST",
            headers: { authorization, "content-type": "application/json" },
            body: Buffer.from(request("connect"), "base64"),
          });
          const etag = first.headers.get("etag");
          bytes = (await first.arrayBuffer()).byteLength;
          if (first.status !== 200 || !etag) throw new Error(`EvaluateAll answered ${first.status} without an ETag`);
          for (const protocol of ["grpc", "connect"] as const) {
            const variants =
              cache === "0"
                ? [["full", ""]]
                : [
                    ["repeated", ""],
                    ["revalidate", etag],
                  ];
            for (const [variant, tag] of variants) {
              const r = await runProcess<Result>("bench/evaluator/loadgen.ts", [
                JSON.stringify({
                  protocol,
                  url,
                  path: PATH,
                  body: request(protocol, tag),
                  headers: { authorization },
                  mode: "closed",
                  concurrency,
                  rate: 0,
                  seconds,
                  connections,
                }),
              ]);
              (runs[`${protocol} ${variant}`] ??= []).push(r);
              console.log(`${n} flags, round ${round + 1}, ${protocol} ${variant}: ${r.rps} calls/s, ${r.errors} errors`);
            }
          }
        } finally {
          await stopProcess(child);
        }
      }
    }
    for (const protocol of ["grpc", "connect"] as const) {
      const full = runs[`${protocol} full`] ?? [];
      const ratio = (variant: string) =>
        fmt(
          (runs[`${protocol} ${variant}`] ?? []).flatMap((x, i) => (full[i] ? [x.rps / full[i].rps] : [])),
          2,
        );
      const errors = Object.entries(runs)
        .filter(([k]) => k.startsWith(protocol))
        .reduce((e, [, xs]) => e + xs.reduce((a, x) => a + x.errors, 0), 0);
      const row = `| ${n} (${(bytes / 1024).toFixed(1)} KB JSON) | ${protocol === "grpc" ? "gRPC" : "Connect JSON"} | ${fmt(full.map((x) => x.rps))} | ${fmt(
        (runs[`${protocol} repeated`] ?? []).map((x) => x.rps),
      )} | ${ratio("repeated")} | ${fmt((runs[`${protocol} revalidate`] ?? []).map((x) => x.rps))} | ${ratio("revalidate")} | ${errors} |`;
      rows.push(row);
      console.log(row);
    }
  }
} finally {
  rmSync(dir, { recursive: true, force: true });
}
console.log(
  "\n| flags | protocol | full, calls/s (min / **median** / max) | repeated context, calls/s | repeated / full | revalidation, calls/s | revalidation / full | errors |",
);
console.log("|---|---|---|---|---|---|---|---|");
for (const r of rows) console.log(r);
