/**
 * The snapshot source stops whenever it is told to, even while its KV watch is still being set
 * up — an evaluator that fails to start right after attaching must still exit.
 */
import type { KV } from "@nats-io/kv";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type Bus, connectBus, ensureKv } from "#lib/bus/bus.ts";
import { createTestLogger, testNatsUrl, uniqueName } from "#test/support/harness.ts";
import { createKvSnapshotSource } from "../snapshots/kv-source.ts";
import { createSnapshotStore } from "../snapshots/store.ts";

const bucket = uniqueName("kv_stop");
let bus: Bus;
let kv: KV | undefined;

beforeAll(async () => {
  bus = await connectBus({ servers: testNatsUrl, name: "kv-source-stop-test" });
  // An empty bucket: the watch gets no update that would end a missed stop by chance.
  kv = await ensureKv(bus.kvm, { bucket, history: 1, replicas: 1, maxValueSize: 1024, description: "test" });
});
afterAll(async () => {
  await kv?.destroy();
  await bus.drain();
});

describe("KV snapshot source stop", () => {
  for (const turns of [0, 1, 2, 5, 10, 20, 50, 100]) {
    it(`resolves when stopped ${turns} event-loop turns after attaching`, async () => {
      const source = createKvSnapshotSource({ bucket, store: createSnapshotStore(), logger: createTestLogger() });
      source.attach(bus);
      for (let i = 0; i < turns; i++) await new Promise<void>((resolve) => setImmediate(resolve));
      // A stop that misses the watch never resolves: the test's timeout fails it.
      await expect(source.stop()).resolves.toBeUndefined();
    }, 15_000);
  }
});
