/**
 * The collector's window of outstanding acknowledgements: while JetStream holds back its answers
 * (here: a gate in front of the real client's publish), a Track that finds no room is answered
 * UNAVAILABLE with a retry hint instead of being buffered, and the call that holds the window
 * is answered only once its events are acknowledged. With partitions, events land in their
 * unit's partition stream.
 */
import { randomUUID } from "node:crypto";
import { Code, ConnectError, createClient } from "@connectrpc/connect";
import { createGrpcTransport } from "@connectrpc/connect-node";
import type { JetStreamClient } from "@nats-io/jetstream";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { EventService } from "#gen/vane/events/v1/event_service_pb.js";
import { type Bus, connectBus } from "#lib/bus/bus.ts";
import { eventsLayout } from "#lib/bus/partitions.ts";
import { createEnvReader } from "#lib/process/config.ts";
import { readCommonConfig } from "#lib/process/service-config.ts";
import { type RunningModules, startModules } from "#lib/process/service-module.ts";
import { createTestLogger, deleteStreams, eventually, testNatsUrl, uniqueName } from "#test/support/harness.ts";
import { createTestTokens } from "#test/support/tokens.ts";
import { createCollectorModule } from "../module.ts";

describe("collector back-pressure", () => {
  const layout = eventsLayout(uniqueName("EVENTS_BP").toUpperCase(), 2);
  const env = { org: randomUUID(), prj: randomUUID(), env: randomUUID() };
  let bus: Bus;
  let running: RunningModules;
  let client: ReturnType<typeof createClient<typeof EventService>>;
  let open: () => void = () => undefined;
  let gate = Promise.resolve();
  let publishes = 0;

  beforeAll(async () => {
    bus = await connectBus({ servers: testNatsUrl, name: "collector-bp-test" });
    const real = bus.js;
    // JetStream answering slowly: every publish waits for the gate before it reaches the server.
    const slow = new Proxy(real, {
      get: (target, prop, receiver) =>
        prop === "publish"
          ? async (...args: Parameters<JetStreamClient["publish"]>) => {
              publishes++;
              await gate;
              return target.publish(...args);
            }
          : Reflect.get(target, prop, receiver),
    });
    const tokens = await createTestTokens();
    const module = await createCollectorModule({
      bus: { ...bus, js: slow },
      streamName: layout.legacy.name,
      partitions: 2,
      maxInFlight: 1000,
      publishTimeoutMs: 1000,
      rateLimit: { perSecond: 100_000, burst: 100_000 },
      logger: createTestLogger(),
    });
    const reader = createEnvReader({ VANE_PORT: "0", VANE_HOST: "127.0.0.1", VANE_DRAIN_DELAY: "0s" });
    running = await startModules({ config: readCommonConfig(reader), logger: createTestLogger(), modules: [module], verifier: tokens.verifier });
    const token = await tokens.sign({ sub: randomUUID(), ...env, kind: "server" });
    client = createClient(
      EventService,
      createGrpcTransport({
        baseUrl: `http://127.0.0.1:${running.port}`,
        interceptors: [(next) => (req) => (req.header.set("authorization", `Bearer ${token}`), next(req))],
      }),
    );
  });
  afterAll(async () => {
    open();
    await running?.stop();
    await deleteStreams(bus.nc, [layout.legacy.name, ...layout.partitionStreams.map((s) => s.name)]);
    await bus.drain();
  });

  const events = (n: number) => Array.from({ length: n }, (_, i) => ({ eventId: randomUUID(), name: "click", unitKey: `u${i}` }));

  it("answers UNAVAILABLE when the window is full, and a call only after its events are acknowledged", async () => {
    gate = new Promise<void>((r) => (open = r));
    let answered = false;
    const first = client.track({ events: events(1000) }).finally(() => (answered = true));
    await eventually(() => publishes === 1000, 10_000, "the first call's 1,000 publishes in flight at once");

    const err = await client.track({ events: events(10) }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ConnectError);
    expect((err as ConnectError).code).toBe(Code.Unavailable);
    expect((err as ConnectError).message).toMatch(/no room for 10 events within 1000 ms; retry the batch with the same event ids/);
    expect((err as ConnectError).metadata.get("retry-after")).toBe("1");
    expect(answered).toBe(false);

    open();
    expect((await first).accepted).toBe(1000);
    expect((await client.track({ events: events(10) })).accepted).toBe(10);
    // Spread over both partition streams; nothing on the unpartitioned one.
    const counts = await Promise.all([layout.legacy, ...layout.partitionStreams].map(async (s) => (await bus.jsm.streams.info(s.name)).state.messages));
    expect(counts[0]).toBe(0);
    expect(counts[1] + counts[2]).toBe(1010);
    expect(Math.min(counts[1], counts[2])).toBeGreaterThan(300);
  });
});
