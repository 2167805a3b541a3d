/**
 * Runs the real `vane` binary (cli/bin/vane.js) in a child process, with its own config
 * directory, as a person or a CI job would.
 */
import { spawn, type ChildProcess } from "node:child_process";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";

export const bin = fileURLToPath(new URL("../bin/vane.js", import.meta.url));

export interface Result {
  code: number | null;
  stdout: string;
  stderr: string;
}

export interface Cli {
  readonly configHome: string;
  /** Runs `vane args…` to completion; `input` is written to its stdin. */
  run(args: string[], options?: { env?: Record<string, string | undefined>; input?: string }): Promise<Result>;
  /** Starts `vane args…` and leaves it running (watch, apply --confirm). */
  start(args: string[], options?: { env?: Record<string, string | undefined> }): Running;
  cleanup(): Promise<void>;
}

export interface Running {
  child: ChildProcess;
  output(): Result;
  /** Resolves once `pattern` appears in stdout or stderr. */
  waitFor(pattern: RegExp, timeoutMs?: number): Promise<void>;
  exited: Promise<Result>;
}

function startProcess(args: string[], env: Record<string, string | undefined>): Running {
  // A clean environment: no VANE_* settings or colours leak in from the developer's shell.
  const base = Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith("VANE_") && k !== "FORCE_COLOR"));
  const child = spawn(process.execPath, [bin, ...args], { env: { ...base, ...env }, stdio: ["pipe", "pipe", "pipe"] });
  let stdout = "";
  let stderr = "";
  const listeners = new Set<() => void>();
  child.stdout!.on("data", (d: Buffer) => {
    stdout += d.toString("utf8");
    listeners.forEach((l) => l());
  });
  child.stderr!.on("data", (d: Buffer) => {
    stderr += d.toString("utf8");
    listeners.forEach((l) => l());
  });
  const exited = new Promise<Result>((resolve) => child.once("close", (code) => resolve({ code, stdout, stderr })));
  return {
    child,
    output: () => ({ code: child.exitCode, stdout, stderr }),
    exited,
    waitFor: (pattern, timeoutMs = 20_000) =>
      new Promise<void>((resolve, reject) => {
        const check = () => {
          if (pattern.test(stdout) || pattern.test(stderr)) finish();
        };
        const timer = setTimeout(() => finish(new Error(`no ${pattern} in ${timeoutMs} ms:\n${stdout}\n${stderr}`)), timeoutMs);
        const onExit = () => finish(new Error(`vane exited before ${pattern}:\n${stdout}\n${stderr}`));
        const finish = (err?: Error) => {
          clearTimeout(timer);
          listeners.delete(check);
          child.off("close", onExit);
          if (err) reject(err);
          else resolve();
        };
        listeners.add(check);
        child.once("close", onExit);
        check();
      }),
  };
}

export async function createCli(): Promise<Cli> {
  const configHome = await mkdtemp(join(tmpdir(), "vane-cli-"));
  const env = (extra: Record<string, string | undefined> = {}) => ({ XDG_CONFIG_HOME: configHome, HOME: configHome, ...extra });
  return {
    configHome,
    async run(args, options = {}) {
      const p = startProcess(args, env(options.env));
      p.child.stdin!.end(options.input ?? "");
      return p.exited;
    },
    start: (args, options = {}) => startProcess(args, env(options.env)),
    cleanup: () => rm(configHome, { recursive: true, force: true }),
  };
}
