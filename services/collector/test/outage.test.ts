/**
 * NATS down: Track answers UNAVAILABLE (nothing is acknowledged that was not stored), and once
 * NATS is back the same batch goes through, counted once.
 */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { randomUUID } from "node:crypto";
import { Code, ConnectError, createClient } from "@connectrpc/connect";
import { createGrpcTransport } from "@connectrpc/connect-node";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { EventService } from "#gen/vane/events/v1/event_service_pb.js";
import { type Bus, connectBus } from "#lib/bus/bus.ts";
import { createEnvReader } from "#lib/process/config.ts";
import { findNatsServer, freePort, type StartedServer, startNatsServer } from "#dev/local-infra.ts";
import { readCommonConfig } from "#lib/process/service-config.ts";
import { type RunningModules, startModules } from "#lib/process/service-module.ts";
import { createTestLogger } from "#test/support/harness.ts";
import { createTestTokens } from "#test/support/tokens.ts";
import { createCollectorModule } from "../module.ts";

describe("collector during a NATS outage", () => {
  const storeDir = mkdtempSync(join(tmpdir(), "vane-nats-"));
  let nats: StartedServer;
  let binary: string;
  let port: number;
  let bus: Bus;
  let running: RunningModules;
  let token: string;
  let baseUrl: string;

  beforeAll(async () => {
    binary = (await findNatsServer())!;
    port = await freePort();
    nats = await startNatsServer({ binary, storeDir, port });
    bus = await connectBus({ servers: nats.url, name: "collector-outage" });
    const tokens = await createTestTokens();
    const module = await createCollectorModule({ bus, streamName: "VANE_EVENTS", publishTimeoutMs: 500, logger: createTestLogger() });
    running = await startModules({
      config: readCommonConfig(createEnvReader({ VANE_PORT: "0", VANE_HOST: "127.0.0.1", VANE_DRAIN_DELAY: "0s" })),
      logger: createTestLogger(),
      modules: [module],
      verifier: tokens.verifier,
    });
    baseUrl = `http://127.0.0.1:${running.port}`;
    token = await tokens.sign({ sub: randomUUID(), org: randomUUID(), prj: randomUUID(), env: randomUUID(), kind: "server" });
  });
  afterAll(async () => {
    await running?.stop();
    await bus?.drain().catch(() => undefined);
    await nats?.stop();
    rmSync(storeDir, { recursive: true, force: true });
  });

  it("answers UNAVAILABLE while NATS is down and accepts the retried batch, once, when it is back", async () => {
    const client = createClient(EventService, createGrpcTransport({ baseUrl }));
    const headers = { authorization: `Bearer ${token}` };
    const events = [{ eventId: randomUUID(), name: "checkout", unitKey: "u1", value: 10 }];
    expect((await client.track({ events: [{ name: "warmup", unitKey: "u0" }] }, { headers })).accepted).toBe(1);

    await nats.stop();
    const err = await client.track({ events }, { headers }).then(
      () => undefined,
      (e: unknown) => ConnectError.from(e),
    );
    expect(err?.code).toBe(Code.Unavailable);

    nats = await startNatsServer({ binary, storeDir, port });
    // The client reconnects on its own; retry like a real sender would.
    let accepted = 0;
    for (let i = 0; i < 50 && accepted === 0; i++) {
      accepted = await client.track({ events }, { headers }).then(
        (r) => r.accepted,
        () => 0,
      );
      if (!accepted) await new Promise((r) => setTimeout(r, 200));
    }
    expect(accepted).toBe(1);
    await client.track({ events }, { headers });
    const info = await bus.jsm.streams.info("VANE_EVENTS");
    // warm-up + checkout, whatever the retries.
    expect(info.state.messages).toBe(2);
  });
});
