/**
 * An exposure that can never be published never blocks the ones after it, and the buffer that
 * rides out an outage is bounded in bytes: against a real JetStream stream.
 */
import { jetstream, jetstreamManager } from "@nats-io/jetstream";
import type { NatsConnection } from "@nats-io/transport-node";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { eventsStream } from "#lib/bus/streams.ts";
import { connectTestNats, createTestLogger, deleteStreams, eventually, uniqueName } from "#test/support/harness.ts";
import { createExposurePublisher, type Exposure, type ExposureBus } from "../exposures.ts";

const exposure = (unitKey: string): Exposure => ({
  organizationId: "o",
  projectId: "p",
  environmentId: "e1",
  flagKey: "f",
  variant: "b",
  experimentId: "x",
  unitKey,
});

describe("exposure publisher limits", () => {
  const stream = uniqueName("EXPOSURES").toUpperCase();
  let nc: NatsConnection;
  let bus: ExposureBus;
  beforeAll(async () => {
    nc = await connectTestNats();
    const jsm = await jetstreamManager(nc);
    const spec = eventsStream(stream);
    // The stream refuses messages over 2,000 bytes: a message-specific, permanent failure.
    await jsm.streams.add({ name: stream, subjects: spec.subjects, max_msg_size: 2_000, duplicate_window: 60_000_000_000 });
    bus = { js: jetstream(nc), jsm, status: () => "connected", manageJetStream: false, maxPayload: () => nc.info?.max_payload };
  });
  afterAll(async () => {
    await deleteStreams(nc, [stream]);
    await nc.close();
  });

  const stored = async () => (await (await jetstreamManager(nc)).streams.info(stream)).state.messages;

  it("drops and counts an exposure the stream refuses, and publishes the 200 after it", async () => {
    const p = createExposurePublisher({ logger: createTestLogger(), stream, flushIntervalMs: 20, dedupeSize: 0, maxAttempts: 3 });
    p.attach(bus);
    p.record(exposure("x".repeat(3_000))); // more than the stream's 2,000 bytes, far less than max_payload
    for (let i = 0; i < 200; i++) p.record(exposure(`user-${i}`));
    // The refused one may be in flight (out of the buffer, not yet given up): wait for all three.
    await eventually(
      () => p.stats().published === 200 && p.stats().buffered === 0 && p.stats().undeliverable === 1,
      20_000,
      "the normal exposures published, the refused one dropped",
    );
    expect(p.stats()).toMatchObject({ undeliverable: 1, dropped: 0, published: 200 });
    expect(await stored()).toBe(200);
    await p.stop();
  });

  it("never buffers an exposure larger than the server's max_payload", async () => {
    const p = createExposurePublisher({ logger: createTestLogger(), stream, flushIntervalMs: 1_000_000, dedupeSize: 0 });
    p.attach(bus);
    p.record(exposure("k".repeat((nc.info?.max_payload ?? 1 << 20) + 1)));
    expect(p.stats()).toMatchObject({ buffered: 0, bufferedBytes: 0, undeliverable: 1 });
    await p.stop();
  });

  it("bounds the buffer in bytes while NATS is unreachable, counting what it drops", async () => {
    const down: ExposureBus = { ...bus, status: () => "reconnecting" };
    const p = createExposurePublisher({
      logger: createTestLogger(),
      stream,
      capacity: 100_000,
      capacityBytes: 64 << 10,
      flushIntervalMs: 1_000_000,
      dedupeSize: 0,
    });
    p.attach(down);
    for (let i = 0; i < 1_000; i++) p.record(exposure(`${i}-${"u".repeat(500)}`));
    const s = p.stats();
    expect(s.bufferedBytes).toBeLessThanOrEqual(64 << 10);
    expect(s.buffered).toBeGreaterThan(50);
    expect(s.buffered + s.dropped).toBe(1_000);
    expect(s.dropped).toBeGreaterThan(800);
    await p.stop(10);
  });
});
