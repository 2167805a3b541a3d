/**
 * The fault schedule of a chaos run, from a seed: rounds in which every fault happens once, in a
 * random order, at random gaps, for random lengths, until the planned time is used up (at least
 * one round). The same seed gives the same schedule, so a failing run can be replayed.
 */
import type { ProxyMode } from "./pg-proxy.ts";
import type { ServiceName } from "./service-process.ts";

export type Fault = { delayMs: number; downMs: number } & (
  { kind: "kill"; service: ServiceName } | { kind: "nats" } | { kind: "postgres"; mode: Exclude<ProxyMode, "pass"> }
);

/** What a restart costs on a loaded 2-core machine, for planning only. */
const RESTART_ESTIMATE_MS = 4_000;

const SERVICES: ServiceName[] = ["identity", "flags", "evaluator", "collector", "analytics"];

export function planFaults(seed: number, durationMs: number): Fault[] {
  const random = mulberry32(seed);
  const between = (lo: number, hi: number) => Math.round(lo + random() * (hi - lo));
  const faults: Fault[] = [];
  let planned = 0;
  do {
    const round: Fault[] = [
      ...SERVICES.map((service) => ({ kind: "kill" as const, service, delayMs: between(500, 3_000), downMs: between(0, 2_000) })),
      { kind: "nats", delayMs: between(500, 3_000), downMs: between(500, 3_000) },
      { kind: "postgres", mode: "refuse", delayMs: between(500, 3_000), downMs: between(2_000, 8_000) },
      { kind: "postgres", mode: "blackhole", delayMs: between(500, 3_000), downMs: between(2_000, 8_000) },
    ];
    for (let i = round.length - 1; i > 0; i--) {
      const j = Math.floor(random() * (i + 1));
      [round[i], round[j]] = [round[j], round[i]];
    }
    faults.push(...round);
    planned += round.reduce((ms, f) => ms + f.delayMs + f.downMs + (f.kind === "postgres" ? 0 : RESTART_ESTIMATE_MS), 0);
  } while (planned < durationMs);
  return faults;
}

/** A small seeded generator (Mulberry32): enough for a schedule, and replayable. */
function mulberry32(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}
