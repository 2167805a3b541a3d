/**
 * What every entry point (`services/<name>/main.ts`, `scripts/start.ts`, `scripts/migrate.ts`)
 * shares: configuration read once with a clean exit when it is wrong, and a process that runs
 * until SIGTERM/SIGINT, then tears down what it started in reverse order — also when the signal
 * arrives, or start-up fails, half-way through starting.
 */
import { readFileSync } from "node:fs";
import { ConfigError, createEnvReader, type EnvReader } from "#lib/process/config.ts";
import type { Logger } from "#lib/process/logger.ts";

/** Exit code for bad configuration (sysexits' EX_CONFIG): restarting will not help. */
export const EXIT_CONFIG = 78;
/** Exit code for a bad command line. */
export const EXIT_USAGE = 2;

type Env = Readonly<Record<string, string | undefined>>;

/**
 * Reads configuration with `read` and validates it. On any problem prints every one to stderr
 * and exits with {@link EXIT_CONFIG}, without a stack trace. `fail` records a problem the
 * reader cannot express (a setting required only in this mode, a cross-field rule).
 */
export function readConfigOrExit<T>(env: Env, read: (reader: EnvReader, fail: (problem: string) => void) => T): T {
  const reader = createEnvReader(env);
  const extra: string[] = [];
  const value = read(reader, (problem) => extra.push(problem));
  let problems = extra;
  try {
    reader.done();
  } catch (err) {
    if (!(err instanceof ConfigError)) throw err;
    problems = [...err.problems, ...extra];
  }
  if (problems.length > 0) exitWithConfigError(new ConfigError(problems));
  return value;
}

function exitWithConfigError(err: ConfigError): never {
  process.stderr.write(`${err.message}\n`);
  process.exit(EXIT_CONFIG);
}

/**
 * One line for a person: the error's message and its causes', skipping repeats, with the
 * errno code where Node leaves the message empty (AggregateError from a refused connection).
 */
export function describeError(err: unknown): string {
  const parts: string[] = [];
  let e: unknown = err;
  for (let depth = 0; e !== undefined && e !== null && depth < 5; depth++) {
    let message: string;
    if (e instanceof AggregateError && !e.message) message = e.errors.map(describeError).join("; ");
    else if (e instanceof Error) message = e.message || (e as NodeJS.ErrnoException).code || e.name;
    else message = String(e);
    if (message && !parts.some((p) => p.includes(message))) parts.push(message);
    e = e instanceof Error ? e.cause : undefined;
  }
  return parts.join(": ");
}

/** What {@link runMain} gives the entry point's body. */
export interface MainContext {
  /** Aborted when SIGTERM or SIGINT arrives, also during start-up. */
  readonly signal: AbortSignal;
  /** Registers a teardown step; steps run in reverse order of registration. */
  onStop(step: () => void | Promise<void>): void;
  /** Reports stopping and failures through `logger` from now on (stderr until then). */
  useLogger(logger: Logger): void;
}

/** Options for {@link runMain}. */
export interface RunMainOptions {
  /**
   * A command a person runs in a terminal (`npm start`): a failed start is logged, with its
   * stack, at debug level only, below the one-line message. Services log it as an error.
   */
  interactive?: boolean;
  /**
   * Stop, as on SIGTERM, when the parent process goes away (`npm start`: npm killed with no
   * chance to pass the signal on), instead of running on, orphaned, holding the ports.
   */
  stopWithParent?: boolean;
  /**
   * After a failed start nothing is serving and there is no one to press Ctrl-C twice: exit
   * with 1 if stopping what had started takes longer than this (default 20 s).
   */
  failedStopTimeoutMs?: number;
}

/** A repeat of the signal this soon is the same request (Ctrl-C reaches npm and node; npm passes it on). */
const SAME_SIGNAL_MS = 500;
/** How often a process that stops with its parent checks on it. */
const PARENT_CHECK_MS = 250;

/**
 * Runs an entry point: `start` starts everything, registering a teardown step for each thing it
 * started. The process then runs until SIGTERM or SIGINT, tears down in reverse order and exits
 * 0 (1 if a step failed). A signal during start-up stops as soon as `start` settles (it may
 * check `signal` to stop early). If `start` throws, what it started is torn down and the
 * process exits {@link EXIT_CONFIG} for a ConfigError, else 1. A second signal exits at once
 * (the same signal repeated within half a second counts once).
 */
export function runMain(name: string, start: (ctx: MainContext) => Promise<void>, options: RunMainOptions = {}): void {
  const stopping = new AbortController();
  const steps: (() => void | Promise<void>)[] = [];
  let logger: Logger | undefined;
  let started = false;
  let tearingDown = false;

  const teardown = async (exitCode: number) => {
    if (tearingDown) return;
    tearingDown = true;
    // Should the event loop empty while a step hangs, node exits with this, not 0.
    process.exitCode = exitCode;
    let code = exitCode;
    for (const step of steps.splice(0).reverse()) {
      try {
        await step();
      } catch (err) {
        code = code || 1;
        if (logger) logger.error({ err }, "stopping failed");
        else process.stderr.write(`${name}: stopping failed: ${describeError(err)}\n`);
      }
    }
    logger?.info({ exitCode: code }, "stopped");
    process.exit(code);
  };

  let first: { signal: string; at: number } | undefined;
  const stop = (reason: string) => {
    logger?.info({ reason }, "stopping");
    stopping.abort(new Error(`stopped by ${reason}`));
    if (started) void teardown(0);
  };
  const onSignal = (signal: NodeJS.Signals) => {
    if (stopping.signal.aborted) {
      if (first?.signal === signal && performance.now() - first.at < SAME_SIGNAL_MS) return;
      process.stderr.write(`${name}: ${signal} again: exiting without finishing the shutdown\n`);
      process.exit(1);
    }
    first = { signal, at: performance.now() };
    stop(signal);
  };
  process.on("SIGTERM", onSignal);
  process.on("SIGINT", onSignal);
  if (options.stopWithParent) {
    const parent = parentPid();
    if (parent > 1) {
      const timer = setInterval(() => {
        if (stopping.signal.aborted) return clearInterval(timer);
        if (!isRunning(parent)) stop("the parent process exiting");
      }, PARENT_CHECK_MS);
      timer.unref();
    }
  }

  start({
    signal: stopping.signal,
    onStop: (step) => void steps.push(step),
    useLogger: (l) => void (logger = l),
  }).then(
    () => {
      started = true;
      if (stopping.signal.aborted) void teardown(0);
    },
    (err: unknown) => {
      // Stopped on purpose while starting: a clean stop, not a failure.
      if (stopping.signal.aborted && (err === stopping.signal.reason || (err instanceof Error && err.name === "AbortError"))) {
        void teardown(0);
        return;
      }
      if (err instanceof ConfigError) {
        process.stderr.write(`${err.message}\n`);
        void teardown(EXIT_CONFIG);
        return;
      }
      // The log keeps the stack for whoever debugs it; the person at the terminal gets one line.
      if (options.interactive) logger?.debug({ err }, "failed to start");
      else logger?.error({ err }, "failed to start");
      process.stderr.write(`${name}: failed to start: ${describeError(err)}\n`);
      const limitMs = options.failedStopTimeoutMs ?? 20_000;
      setTimeout(() => {
        process.stderr.write(`${name}: stopping after the failed start took over ${limitMs / 1000} s; exiting without finishing it\n`);
        process.exit(1);
      }, limitMs).unref();
      void teardown(1);
    },
  );
}

/** This process's parent now (Linux reads it fresh; elsewhere the one at start). */
function parentPid(): number {
  try {
    const stat = readFileSync("/proc/self/stat", "utf8");
    // "pid (command) state ppid …": the command may contain spaces and parentheses.
    return Number(stat.slice(stat.lastIndexOf(")") + 2).split(" ")[1]);
  } catch {
    return process.ppid;
  }
}

/** Whether `parent` is still this process's parent and alive. */
function isRunning(parent: number): boolean {
  if (parentPid() !== parent) return false;
  try {
    process.kill(parent, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === "EPERM";
  }
}

/**
 * `VANE_SCHEMA_PREFIX`: put before every service's schema name (`t1_identity`), so several
 * local runs or test runs can share one database. Empty by default; never needed in Kubernetes,
 * where each service has its own database.
 */
export function readSchemaPrefix(env: EnvReader, fail: (problem: string) => void): string {
  const prefix = env.optional("VANE_SCHEMA_PREFIX") ?? "";
  // Short enough that prefix + the longest service name stays within Postgres' 63 characters.
  if (prefix && !/^[a-z_][a-z0-9_]{0,39}$/.test(prefix)) {
    fail(`VANE_SCHEMA_PREFIX must be lower-case letters, digits and _ (at most 40, not starting with a digit), got "${prefix}"`);
    return "";
  }
  return prefix;
}
