/**
 * The chaos suite's short run in CI: one round of every fault (kill -9 of each service and of
 * nats-server, a Postgres outage that refuses and one that black-holes) under a steady mixed load,
 * at a random seed that a failure prints for replay with `npm run chaos -- --seed N`. The checks
 * are test/chaos/run.ts's; the long run and its results are in docs/reliability.md.
 */
import { describe, expect, it } from "vitest";
import { runChaos } from "./chaos/run.ts";

describe("chaos", () => {
  it("counts every accepted event once, drains, converges watchers and serves evaluations through one round of faults", async () => {
    const seed = Number(process.env.VANE_CHAOS_SEED ?? Math.floor(Math.random() * 2 ** 31));
    const lines: string[] = [];
    const report = await runChaos({ durationMs: 1, seed, log: (line) => lines.push(line) });
    expect(
      report.violations,
      `seed ${seed}; replay with npm run chaos -- --seed ${seed} --minutes 1\n${lines.join("\n")}\n${JSON.stringify(report, null, 2)}`,
    ).toEqual([]);
    expect(report.eventsAccepted).toBeGreaterThan(0);
    expect(report.faults.length).toBeGreaterThanOrEqual(8);
  }, 400_000);
});
