import { setMaxListeners } from "node:events";
import { Code, ConnectError } from "@connectrpc/connect";
import { afterAll, describe, expect, it } from "vitest";
import type { WatchResponse } from "#gen/vane/evaluation/v1/evaluation_service_pb.js";
import type { FlagSetDefinition, JsonValue } from "#engine";
import { createTestLogger, eventually } from "#test/support/harness.ts";
import { createFlagEvaluator } from "../evaluate.ts";
import { createExposurePublisher } from "../exposures.ts";
import { createEvaluatorMetrics } from "../metrics.ts";
import { createSnapshotStore } from "../snapshots/store.ts";
import { createWatchFanOut, type WatchTarget } from "./fan-out.ts";

const store = createSnapshotStore();
const exposures = createExposurePublisher({ logger: createTestLogger(), stream: "unused" });
const counters = createEvaluatorMetrics({ store, staleSeconds: () => 0, exposures: () => exposures.stats() });
const fanOut = createWatchFanOut({ store, evaluator: createFlagEvaluator(counters, exposures), sliceStreams: 16 });
const abort = new AbortController();
setMaxListeners(0, abort.signal); // every stream listens to it

afterAll(async () => {
  abort.abort();
  fanOut.stop();
  counters.stop();
  await exposures.stop();
});

const boolVariants = { on: true, off: false };
/** vip: on for the listed keys; banner: "a" or "b" for everyone; quiet: off for everyone. */
function flags(vip: string[], banner = "a", quiet = "off"): FlagSetDefinition {
  return {
    flags: {
      vip: {
        state: "ENABLED",
        variants: boolVariants,
        defaultVariant: "off",
        targeting: { if: [{ in: [{ var: "targetingKey" }, vip] }, "on", null] } as JsonValue,
      },
      banner: { state: "ENABLED", variants: { a: "a", b: "b" }, defaultVariant: banner },
      quiet: { state: "ENABLED", variants: boolVariants, defaultVariant: quiet },
    },
  };
}
let version = 0;
function put(environmentId: string, def: FlagSetDefinition) {
  store.apply({ environmentId, organizationId: "org-1", projectId: "prj-1", version: ++version, commitTimeMs: Date.now(), definition: def, source: "kv" });
  return version;
}
const server = (environmentId: string): WatchTarget => ({ environmentId, clientOnly: false, exposures: false });
const open = (environmentId: string, context: Record<string, unknown>, deltas = true) =>
  fanOut.watch(server(environmentId), context, deltas, abort.signal)[Symbol.asyncIterator]();
const next = async (s: AsyncIterator<WatchResponse>) => (await s.next()).value as WatchResponse;
const values = (m: WatchResponse) => Object.fromEntries(m.evaluations.map((e) => [e.flagKey, e.value?.kind.value]));

describe("watch fan-out", () => {
  it("sends each context exactly the evaluations that changed for it, once per group", async () => {
    put("env-a", flags(["alice"]));
    const alice = open("env-a", { targetingKey: "alice", plan: "pro" });
    const aliceAgain = open("env-a", { plan: "pro", targetingKey: "alice" }); // same context, other order
    const bob = open("env-a", { targetingKey: "bob" });
    const full = open("env-a", { targetingKey: "bob" }, false);
    const firsts = await Promise.all([alice, aliceAgain, bob, full].map(next));
    expect(firsts[0]).toBe(firsts[1]);
    expect(firsts.map((m) => m.delta)).toEqual([false, false, false, false]);
    expect(values(firsts[0])).toEqual({ vip: true, banner: "a", quiet: false });
    expect(values(firsts[2])).toEqual({ vip: false, banner: "a", quiet: false });
    expect(fanOut.stats()).toMatchObject({ groups: 2, streams: 4 });

    // vip moves from alice to carol (alice's result changes, bob's does not); banner changes for all.
    const v2 = put("env-a", flags(["carol"], "b"));
    const [a2, a2again, b2, f2] = await Promise.all([alice, aliceAgain, bob, full].map(next));
    expect(a2).toBe(a2again);
    expect(a2).toMatchObject({ delta: true, version: BigInt(v2), removedFlagKeys: [] });
    expect(values(a2)).toEqual({ vip: false, banner: "b" });
    expect([...a2.changedFlagKeys].sort()).toEqual(["banner", "vip"]);
    expect(values(b2)).toEqual({ banner: "b" });
    expect(b2.changedFlagKeys).toEqual(["banner"]);
    // A stream without deltas still gets the whole state, naming what changed.
    expect(f2).toMatchObject({ delta: false, changedFlagKeys: ["banner"] });
    expect(values(f2)).toEqual({ vip: false, banner: "b", quiet: false });

    // A rule change that changes nothing for these contexts sends no delta (full states still go).
    const v3 = put("env-a", flags(["dave"], "b"));
    const f3 = await next(full);
    expect(f3).toMatchObject({ version: BigInt(v3), changedFlagKeys: [], delta: false });
    const v4 = put("env-a", flags(["dave"], "b", "on"));
    for (const s of [alice, bob]) {
      const m = await next(s);
      expect(m.version).toBe(BigInt(v4)); // not v3: nothing was sent for it
      expect(values(m)).toEqual({ quiet: true });
    }

    // A stream opened now starts from the full state.
    const late = open("env-a", { targetingKey: "alice", plan: "pro" });
    const first = await next(late);
    expect(first).toMatchObject({ delta: false, version: BigInt(v4), changedFlagKeys: ["vip", "banner", "quiet"] });
    expect(values(first)).toEqual({ vip: false, banner: "b", quiet: true });
    await Promise.all([alice, aliceAgain, bob, full, late].map((s) => s.return?.(undefined)));
    expect(fanOut.stats()).toMatchObject({ groups: 0, streams: 0 });
  });

  it("re-evaluates flags that read the clock on every change", async () => {
    let now = 1_000;
    const clocked = createSnapshotStore({ now: () => now });
    const watchers = createWatchFanOut({ store: clocked, evaluator: createFlagEvaluator(counters, exposures) });
    const def = (quiet: string): FlagSetDefinition => ({
      flags: {
        late: {
          state: "ENABLED",
          variants: boolVariants,
          defaultVariant: "off",
          targeting: { if: [{ ">": [{ var: "$flagd.timestamp" }, 2] }, "on", null] } as JsonValue,
        },
        quiet: { state: "ENABLED", variants: boolVariants, defaultVariant: quiet },
      },
    });
    const apply = (v: number, quiet: string) =>
      clocked.apply({ environmentId: "env-t", organizationId: "o", projectId: "p", version: v, commitTimeMs: now, definition: def(quiet), source: "kv" });
    apply(1, "off");
    const s = watchers.watch(server("env-t"), { targetingKey: "u" }, true, abort.signal)[Symbol.asyncIterator]();
    expect(values(await next(s))).toEqual({ late: false, quiet: false });
    now = 5_000; // $flagd.timestamp is in seconds
    apply(2, "on");
    const m = await next(s);
    expect(values(m)).toEqual({ late: true, quiet: true });
    await s.return?.(undefined);
    watchers.stop();
  });

  it("yields the event loop while fanning out to many streams", async () => {
    put("env-many", flags([]));
    const streams = Array.from({ length: 200 }, (_, i) => open("env-many", { targetingKey: `u-${i}` }));
    await Promise.all(streams.map(next));
    const received: WatchResponse[] = [];
    const readers = streams.map(async (s) => received.push(await next(s)));
    const before = fanOut.stats().slices;
    put("env-many", flags([], "b"));
    // Scheduled after the change: it runs while the fan-out is still under way.
    const midway = await new Promise<number>((r) => setImmediate(() => r(received.length)));
    expect(midway).toBeLessThan(200);
    await Promise.all(readers);
    expect(received.every((m) => m.delta && m.evaluations.length === 1)).toBe(true);
    expect(fanOut.stats().slices - before).toBeGreaterThanOrEqual(200 / 16 - 1);
    await Promise.all(streams.map((s) => s.return?.(undefined)));
  });

  it("coalesces changes a stream has not taken yet into one delta", async () => {
    put("env-slow", flags([]));
    const s = open("env-slow", { targetingKey: "slow" });
    await next(s);
    const updates = fanOut.stats().groupUpdates;
    put("env-slow", flags([], "b"));
    const v = put("env-slow", flags([], "b", "on"));
    // Two fan-outs, each pushing to the stream: the second is merged into the first.
    await eventually(() => fanOut.stats().groupUpdates >= updates + 2 || undefined, 5_000, "both changes fanned out");
    const m = await next(s);
    expect(m).toMatchObject({ delta: true, version: BigInt(v) });
    expect(values(m)).toEqual({ banner: "b", quiet: true });
    await s.return?.(undefined);
  });

  it("fails the streams of a deleted environment with NOT_FOUND", async () => {
    put("env-gone", flags([]));
    const s = open("env-gone", { targetingKey: "x" });
    await next(s);
    store.remove("env-gone");
    const err = await s.next().then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(err instanceof ConnectError && err.code).toBe(Code.NotFound);
  });
});
