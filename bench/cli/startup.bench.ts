/**
 * Start-up time of the real `vane` binary, as a person feels it: `vane --help` (no server) and
 * `vane flags list` (exchange the key, list the project's flags) against the suite's own
 * `npm start`, each run RUNS times after a warm-up, reported hyperfine-style (min/median/max).
 * Target: `vane --help` under 300 ms on this machine (docs/benchmarks.md).
 */
import { spawnSync } from "node:child_process";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { performance } from "node:perf_hooks";
import { bin } from "../../cli/test/run-vane.ts";
import { startVane } from "../../test/vane-process.ts";

const RUNS = Number(process.env.RUNS ?? 15);

function time(args: string[], env: Record<string, string>): number[] {
  const once = () => {
    const start = performance.now();
    const res = spawnSync(process.execPath, [bin, ...args], { env: { ...process.env, ...env }, stdio: ["ignore", "ignore", "pipe"] });
    const ms = performance.now() - start;
    if (res.status !== 0) throw new Error(`vane ${args.join(" ")} exited ${res.status}: ${res.stderr}`);
    return ms;
  };
  once(); // warm-up: builds cli/dist if it is stale, fills the OS cache
  return Array.from({ length: RUNS }, once);
}

function summary(name: string, samples: number[]): string {
  const s = [...samples].sort((a, b) => a - b);
  const median = s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
  return `| \`${name}\` | ${s[0].toFixed(0)} | **${median.toFixed(0)}** | ${s[s.length - 1].toFixed(0)} |`;
}

const vane = startVane();
const configHome = await mkdtemp(join(tmpdir(), "vane-bench-"));
try {
  const { baseUrl, adminKey } = await vane.started(60_000);
  const env = { XDG_CONFIG_HOME: configHome, VANE_URL: baseUrl, VANE_API_KEY: adminKey };
  // 20 flags to list.
  for (let i = 0; i < 20; i++) spawnSync(process.execPath, [bin, "flags", "create", `bench-flag-${i}`], { env: { ...process.env, ...env } });
  const rows = [summary("vane --help", time(["--help"], env)), summary("vane flags list", time(["flags", "list"], env))];
  const baseline = summary(
    "node -e 0",
    (() => {
      const out: number[] = [];
      for (let i = 0; i <= RUNS; i++) {
        const start = performance.now();
        spawnSync(process.execPath, ["-e", "0"]);
        out.push(performance.now() - start);
      }
      return out.slice(1);
    })(),
  );
  console.log(`${RUNS} runs each, ms (Node ${process.version}, load average ${(await import("node:os")).loadavg()[0].toFixed(2)})\n`);
  console.log("| command | min | median | max |\n|---|---:|---:|---:|");
  console.log([baseline, ...rows].join("\n"));
} finally {
  await vane.cleanup();
  await rm(configHome, { recursive: true, force: true });
}
