/**
 * One process per core sharing the ports (node:cluster), for a service whose work is CPU-bound
 * per request (the evaluator). The primary forks `processes` workers, each running the whole
 * service as usual; the primary accepts connections and hands them round-robin to the workers
 * (an HTTP/2 connection stays with its worker). A worker that dies is replaced after a second;
 * one that exits for bad configuration stops them all. SIGTERM or SIGINT is passed on to every
 * worker, each drains as a single process would, and the primary exits when the last has gone.
 */
import cluster from "node:cluster";
import type { Logger } from "#lib/process/logger.ts";
import { EXIT_CONFIG } from "#lib/process/process.ts";

/** How long a dead worker's replacement waits, so a crash loop does not spin. */
const RESTART_DELAY_MS = 1_000;

/** Runs `work` in this process (`processes` ≤ 1, or a worker), or becomes the primary of `processes` workers. */
export function runClustered(processes: number, logger: Logger, work: () => void): void {
  if (processes <= 1 || !cluster.isPrimary) return work();
  let stopping = false;
  let exitCode = 0;
  const alive = () => Object.keys(cluster.workers ?? {}).length;
  const stopAll = (signal: NodeJS.Signals) => {
    stopping = true;
    for (const w of Object.values(cluster.workers ?? {})) w?.process.kill(signal);
    if (alive() === 0) process.exit(exitCode);
  };
  cluster.on("exit", (worker, code, signal) => {
    if (stopping) {
      if (code) exitCode = exitCode || code;
      if (alive() === 0) process.exit(exitCode);
      return;
    }
    if (code === EXIT_CONFIG) {
      logger.error({ pid: worker.process.pid, code }, "a worker found the configuration wrong: stopping");
      exitCode = EXIT_CONFIG;
      return stopAll("SIGTERM");
    }
    logger.error({ pid: worker.process.pid, code, signal }, "a worker exited: starting another");
    setTimeout(() => stopping || cluster.fork(), RESTART_DELAY_MS).unref();
  });
  for (const signal of ["SIGTERM", "SIGINT"] as const) process.on(signal, () => stopAll(signal));
  logger.info({ processes }, "starting one process per core, sharing the ports");
  for (let i = 0; i < processes; i++) cluster.fork();
}
