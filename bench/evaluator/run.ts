/** Process helpers for the evaluator benchmarks. */
import { spawn, type ChildProcess } from "node:child_process";
import { readFileSync } from "node:fs";
import { createInterface } from "node:readline";
import { fileURLToPath } from "node:url";

export const root = fileURLToPath(new URL("../..", import.meta.url));

/** BENCH_CPU_PROF=<dir>: servers write a V8 CPU profile there when stopped (see {@link stopProcess}). */
const profile = process.env.BENCH_CPU_PROF ? ["--cpu-prof", `--cpu-prof-dir=${process.env.BENCH_CPU_PROF}`] : [];

/** Starts `node --import tsx <script> ...args` and resolves with its first stdout line that is not a log line, as JSON. */
export async function startProcess<T>(script: string, args: string[]): Promise<{ child: ChildProcess; info: T }> {
  const child = spawn(process.execPath, [...profile, "--import", "tsx", script, ...args], { cwd: root, stdio: ["ignore", "pipe", "inherit"] });
  const lines = createInterface({ input: child.stdout! });
  const info = await new Promise<T>((resolve, reject) => {
    // Servers log JSON lines to stdout too (a warning at start-up): those carry a level.
    lines.on("line", (l) => {
      const parsed = JSON.parse(l) as T & { level?: unknown };
      if (parsed.level === undefined) resolve(parsed);
    });
    child.once("exit", (code) => reject(new Error(`${script} ${args.join(" ")} exited with ${code}`)));
  });
  return { child, info };
}

/** Runs a process to completion and parses its last stdout line as JSON. */
export async function runProcess<T>(script: string, args: string[]): Promise<T> {
  const child = spawn(process.execPath, ["--import", "tsx", script, ...args], { cwd: root, stdio: ["ignore", "pipe", "inherit"] });
  let out = "";
  child.stdout!.on("data", (d) => (out += d));
  const [code, signal] = await new Promise<[number | null, NodeJS.Signals | null]>((resolve) => child.once("exit", (c, s) => resolve([c, s])));
  const last = out.trim().split("\n").at(-1);
  if (!last) throw new Error(`${script} printed nothing (exit code ${code}, signal ${signal})`);
  return JSON.parse(last) as T;
}

/** CPU seconds (user + system) a process has used so far (Linux). */
export function cpuSeconds(pid: number): number {
  const fields = readFileSync(`/proc/${pid}/stat`, "utf8").split(") ")[1].split(" ");
  return (Number(fields[11]) + Number(fields[12])) / 100; // utime, stime in clock ticks (100 Hz)
}

/** Stops a server started by {@link startProcess}: SIGINT (it exits cleanly, writing any profile), SIGKILL after 5 s. */
export async function stopProcess(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise((resolve) => child.once("exit", resolve));
  child.kill("SIGINT");
  const timer = setTimeout(() => child.kill("SIGKILL"), 5_000);
  await exited;
  clearTimeout(timer);
}
