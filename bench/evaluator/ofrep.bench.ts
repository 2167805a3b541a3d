/**
 * OFREP bulk evaluation (POST /ofrep/v1/evaluate/flags) with and without its ETag path, side by
 * side in one run: the same server, the same context, saturated by the same load generator
 * (bench/evaluator/loadgen.ts, HTTP/1.1); "full" sends no If-None-Match and gets 200 with every
 * flag, "revalidate" sends the ETag of that answer and gets 304. Rounds alternate the two so
 * drift on a busy machine falls on both; the ratio revalidate / full is taken per round and
 * reported as min / median / max. Flag sets: the test fixture (≈20 flags) and a generated one of
 * 200 flags with targeting. `npm run bench:ofrep` (BENCH_SECONDS, BENCH_ROUNDS, BENCH_CONCURRENCY).
 */
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import * as os from "node:os";
import { join } from "node:path";
import { manyFlags } from "./many-flags.ts";
import { root, runProcess, startProcess, stopProcess } from "./run.ts";

const seconds = Number(process.env.BENCH_SECONDS ?? 3);
const rounds = Number(process.env.BENCH_ROUNDS ?? 5);
const concurrency = Number(process.env.BENCH_CONCURRENCY ?? 32);
const connections = Number(process.env.BENCH_CONNECTIONS ?? 4);
const body = Buffer.from(JSON.stringify({ context: { targetingKey: "user-1", plan: "pro", country: "de" } })).toString("base64");

interface Result {
  rps: number;
  p50: number;
  p99: number;
  errors: number;
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
const fmt = (xs: number[], digits = 0) => {
  const s = [...xs].sort((a, b) => a - b);
  return `${s[0].toFixed(digits)} / **${median(s).toFixed(digits)}** / ${s.at(-1)!.toFixed(digits)}`;
};

console.log(`machine: ${os.cpus().length} × ${os.cpus()[0].model}, ${Math.round(os.totalmem() / 2 ** 30)} GiB, Node ${process.version}`);
console.log(`load: ${concurrency} requests in flight over ${connections} HTTP/1.1 connections, ${seconds} s per run (+1 s warm-up), ${rounds} rounds\n`);

const dir = mkdtempSync(join(os.tmpdir(), "vane-ofrep-bench-"));
const sets = [
  { name: "fixture (≈20 flags)", file: `${root}services/evaluator/test/flags.fixture.json` },
  { name: "200 flags", file: join(dir, "flags-200.json") },
];
writeFileSync(sets[1].file, manyFlags(200));
const rows: string[] = [];
try {
  for (const set of sets) {
    process.env.BENCH_FLAGD_FILE = set.file;
    const { child, info } = await startProcess<Record<string, number | string>>("bench/evaluator/servers.ts", ["vane"]);
    try {
      const url = `http://127.0.0.1:${info.main}`;
      const authorization = `Bearer ${info.token}`;
      const first = await fetch(`${url}/ofrep/v1/evaluate/flags`, {
        method: "POST",
        headers: { authorization, "content-type": "application/json" },
        body: Buffer.from(body, "base64"),
      });
      const etag = first.headers.get("etag");
      const bytes = (await first.arrayBuffer()).byteLength;
      if (first.status !== 200 || !etag) throw new Error(`bulk evaluation answered ${first.status} without an ETag`);
      const run = (headers: Record<string, string>, okStatuses: number[]) =>
        runProcess<Result>("bench/evaluator/loadgen.ts", [
          JSON.stringify({
            protocol: "connect",
            url,
            path: "/ofrep/v1/evaluate/flags",
            body,
            headers,
            okStatuses,
            mode: "closed",
            concurrency,
            rate: 0,
            seconds,
            connections,
          }),
        ]);
      const full: Result[] = [];
      const revalidate: Result[] = [];
      for (let r = 0; r < rounds; r++) {
        full.push(await run({ authorization }, [200]));
        revalidate.push(await run({ authorization, "if-none-match": etag }, [304]));
      }
      const errors = [...full, ...revalidate].reduce((n, x) => n + x.errors, 0);
      const row = `| ${set.name} (${(bytes / 1024).toFixed(1)} KB answer) | ${fmt(full.map((x) => x.rps))} | ${fmt(revalidate.map((x) => x.rps))} | ${fmt(
        full.map((x, i) => revalidate[i].rps / x.rps),
        2,
      )} | ${median(full.map((x) => x.p50)).toFixed(2)} / ${median(revalidate.map((x) => x.p50)).toFixed(2)} | ${errors} |`;
      rows.push(row);
      console.log(row);
    } finally {
      await stopProcess(child);
    }
  }
} finally {
  rmSync(dir, { recursive: true, force: true });
}
console.log(
  "\n| flag set | full evaluation, requests/s (min / **median** / max) | revalidation → 304, requests/s | revalidate / full (per round) | median p50 full / 304 (ms) | errors |",
);
console.log("|---|---|---|---|---|---|");
for (const r of rows) console.log(r);
