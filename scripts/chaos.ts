/**
 * `npm run chaos [-- --minutes 10 --seed 42]`: the chaos suite's long run (see docs/reliability.md).
 * Traffic stays on 127.0.0.1; it needs the test Postgres and a nats-server binary of its own to kill.
 * Exits 1 when a check fails, printing the seed to replay it.
 */
import { parseArgs } from "node:util";
import { runChaos } from "../test/chaos/run.ts";

const { values } = parseArgs({ options: { minutes: { type: "string", default: "5" }, seed: { type: "string" } } });
const minutes = Number(values.minutes);
if (!(minutes > 0 && minutes <= 240)) {
  console.error(`--minutes must be a number of minutes between 0 and 240, got "${values.minutes}"`);
  process.exit(2);
}
const seed = values.seed === undefined ? Math.floor(Math.random() * 2 ** 31) : Number(values.seed);
if (!Number.isInteger(seed)) {
  console.error(`--seed must be an integer, got "${values.seed}"`);
  process.exit(2);
}

const started = Date.now();
console.log(`chaos: ${minutes} min of faults, seed ${seed}`);
const report = await runChaos({
  durationMs: minutes * 60_000,
  seed,
  log: (line) => console.log(`  [${((Date.now() - started) / 1000).toFixed(0)} s] ${line}`),
});
console.log(JSON.stringify({ ...report, faults: report.faults.length }, null, 2));
if (report.violations.length > 0) {
  console.error(`chaos: FAILED (replay with --seed ${seed}):\n  ${report.violations.join("\n  ")}`);
  process.exit(1);
}
console.log(
  `chaos: passed — ${report.faults.length} faults, ${report.eventsAccepted} events counted exactly once, drained in ${report.drainSeconds.toFixed(1)} s`,
);
