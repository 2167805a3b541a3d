/**
 * One Vane service as its own operating-system process (`services/<name>/main.ts`), on a fixed
 * port so that it comes back where its callers expect it after a `kill -9`.
 */
import { type ChildProcess, spawn } from "node:child_process";
import { readFile } from "node:fs/promises";
import { fileURLToPath } from "node:url";

const root = fileURLToPath(new URL("../..", import.meta.url));

export type ServiceName = "identity" | "flags" | "evaluator" | "collector" | "analytics";

export interface ServiceProcess {
  readonly name: ServiceName;
  readonly url: string;
  /** Starts the process (again) and resolves once `/readyz` answers 200. */
  start(timeoutMs?: number): Promise<void>;
  /** SIGKILL: a crash, nothing flushed. Resolves once the process is gone. */
  kill(): Promise<void>;
  /** SIGTERM and wait (end of the run). */
  stop(): Promise<void>;
  /** Resident memory in bytes, or undefined while it is not running. */
  rss(): Promise<number | undefined>;
  /** The last lines it printed (for failure reports). */
  tail(): string;
  running(): boolean;
}

export function serviceProcess(name: ServiceName, port: number, env: Record<string, string>): ServiceProcess {
  let child: ChildProcess | undefined;
  let exited: Promise<void> = Promise.resolve();
  let output = "";
  const url = `http://127.0.0.1:${port}`;
  const alive = () => child !== undefined && child.exitCode === null && child.signalCode === null;

  return {
    name,
    url,
    running: alive,
    tail: () => output.split("\n").slice(-15).join("\n"),
    async start(timeoutMs = 60_000) {
      if (alive()) throw new Error(`${name} is already running`);
      const c = spawn(process.execPath, ["--import", "tsx", `services/${name}/main.ts`], {
        cwd: root,
        env: { ...process.env, ...env, VANE_PORT: String(port), VANE_HOST: "127.0.0.1" },
        stdio: ["ignore", "pipe", "pipe"],
      });
      child = c;
      exited = new Promise((resolve) => c.once("exit", () => resolve()));
      const keep = (chunk: Buffer) => void (output = (output + chunk.toString("utf8")).slice(-20_000));
      c.stdout!.on("data", keep);
      c.stderr!.on("data", keep);
      const deadline = Date.now() + timeoutMs;
      for (;;) {
        if (!alive()) throw new Error(`${name} exited during start:\n${this.tail()}`);
        const ready = await fetch(`${url}/readyz`, { signal: AbortSignal.timeout(1_000) }).then(
          (r) => r.ok,
          () => false,
        );
        if (ready) return;
        if (Date.now() > deadline) throw new Error(`${name} not ready after ${timeoutMs} ms:\n${this.tail()}`);
        await new Promise((r) => setTimeout(r, 100));
      }
    },
    async kill() {
      if (alive()) child!.kill("SIGKILL");
      await exited;
    },
    async stop() {
      if (alive()) child!.kill("SIGTERM");
      await exited;
    },
    async rss() {
      if (!alive()) return undefined;
      const status = await readFile(`/proc/${child!.pid}/status`, "utf8").catch(() => "");
      const kb = /VmRSS:\s+(\d+) kB/.exec(status)?.[1];
      return kb ? Number(kb) * 1024 : undefined;
    },
  };
}
