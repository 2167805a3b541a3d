/** Process helpers for the evaluator benchmarks. */
import { spawn, type ChildProcess } from "node:child_process";
import { readFileSync } from "node:fs";
import { createInterface } from "node:readline";
import { fileURLToPath } from "node:url";

export const root = fileURLToPath(new URL("../..", import.meta.url));

/** Starts `node --import tsx <script> ...args` and resolves with its first stdout line as JSON. */
export async function startProcess<T>(script: string, args: string[]): Promise<{ child: ChildProcess; info: T }> {
  const child = spawn(process.execPath, ["--import", "tsx", script, ...args], { cwd: root, stdio: ["ignore", "pipe", "inherit"] });
  const lines = createInterface({ input: child.stdout! });
  const info = await new Promise<T>((resolve, reject) => {
    lines.once("line", (l) => resolve(JSON.parse(l) as T));
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
