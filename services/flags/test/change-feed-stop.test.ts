/**
 * The change feed stops whenever it is told to, even while its consumer is still being set up —
 * a process that fails to start right after creating the flags module must still exit.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type Bus, connectBus, ensureStream } from "#lib/bus/bus.ts";
import { createTestLogger, deleteStreams, testNatsUrl, uniqueName } from "#test/support/harness.ts";
import { createChangeFeed } from "../changes/feed.ts";

const stream = uniqueName("FEED_STOP").toUpperCase();
const prefix = uniqueName("feedstop");
let bus: Bus;

beforeAll(async () => {
  bus = await connectBus({ servers: testNatsUrl, name: "feed-stop-test" });
  await ensureStream(bus.jsm, { name: stream, subjects: [`${prefix}.>`], maxAgeMs: 60_000, duplicateWindowMs: 60_000, replicas: 1, description: "test" });
});
afterAll(async () => {
  await deleteStreams(bus.nc, [stream]);
  await bus.drain();
});

describe("change feed stop", () => {
  // Each round stops a little later into the start-up: before the stream lookup, during the
  // consumer's creation, while it reads, after it caught up.
  for (const turns of [0, 1, 2, 5, 10, 20, 50]) {
    it(`resolves when stopped ${turns} event-loop turns after attaching`, async () => {
      const feed = createChangeFeed({ stream, subjectPrefix: prefix, logger: createTestLogger() });
      feed.attach(bus);
      for (let i = 0; i < turns; i++) await new Promise<void>((resolve) => setImmediate(resolve));
      // A stop that misses the consumer never resolves: the test's timeout fails it.
      await expect(feed.stop()).resolves.toBeUndefined();
    }, 15_000);
  }

  it("resolves when stopped after it caught up, and closes its followers", async () => {
    const feed = createChangeFeed({ stream, subjectPrefix: prefix, logger: createTestLogger() });
    feed.attach(bus);
    const follower = feed.follow("p", new AbortController().signal);
    while (!feed.ready) await new Promise<void>((resolve) => setImmediate(resolve));
    await feed.stop();
    expect(await follower.next(60_000)).toBeUndefined();
  });
});
