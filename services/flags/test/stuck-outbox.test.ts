/**
 * A stuck outbox is loud: a message that keeps failing to publish shows on the relay leader's
 * readiness (naming the message, its attempts, age and error) and as the age in
 * `vane_outbox_stuck_age_seconds`, while parked and after; a republish clears both.
 */
import { sql } from "kysely";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { FlagService } from "#gen/vane/flags/v1/flag_service_pb.js";
import { startTelemetry } from "#lib/process/telemetry.ts";
import { eventually } from "#test/support/harness.ts";
import { type FlagsHarness, startFlags, type Tenant } from "./harness.ts";

let h: FlagsHarness;
let t: Tenant;
let baseUrl: string;
beforeAll(async () => {
  // Metrics (/metrics) need the process's telemetry; it is idempotent.
  startTelemetry({ serviceName: "flags-test", env: { OTEL_TRACES_SAMPLER: "always_off" } });
  h = await startFlags({ relayMaxAttempts: 3, outboxStuckAfterMs: 500 });
  t = await h.seedTenant();
  baseUrl = `http://127.0.0.1:${h.running.port}`;
});
afterAll(() => h?.close());

const readiness = async () => {
  const res = await fetch(`${baseUrl}/readyz`);
  return { status: res.status, failing: res.status === 200 ? {} : ((await res.json()) as { failing: Record<string, string> }).failing };
};
const stuckAge = async () => {
  const text = await (await fetch(`${baseUrl}/metrics`)).text();
  const m = new RegExp(`^vane_outbox_stuck_age_seconds\\{outbox="${h.flagsSchema}\\.outbox"[^}]*\\} ([0-9.e+-]+)$`, "m").exec(text);
  return m ? Number(m[1]) : undefined;
};

describe("a stuck outbox", () => {
  it("fails the leader's readiness and reports its age while a message keeps failing, parked or not; a republish clears it", async () => {
    await eventually(async () => (await readiness()).status === 200, 10_000, "ready at first");
    expect(await stuckAge()).toBe(0);
    // A message NATS refuses every time (2 MiB raw bytes: over max_payload, not an envelope the publisher could chunk).
    const { rows } = await sql<{ id: string }>`insert into outbox (kind, target, ordering_key, payload, msg_id, headers)
      values ('kv', ${t.environmentId}, ${t.environmentId}, ${Buffer.alloc(2 << 20, 1)}, '999999', '{}') returning id`.execute(h.flags.database.db);
    const id = rows[0].id;

    const failing = await eventually(
      async () => {
        const r = await readiness();
        return r.status === 503 && r.failing["flags.outbox"] ? r.failing["flags.outbox"] : undefined;
      },
      20_000,
      "readiness fails on the stuck message",
    );
    expect(failing).toMatch(
      new RegExp(
        `outbox message ${id} \\(kv ${t.environmentId}\\) (keeps failing|is parked) after \\d+ publish attempts, \\d+ s old: .*(payload|size|exceed)`,
        "i",
      ),
    );
    expect(await stuckAge()).toBeGreaterThanOrEqual(0.5);
    expect(h.flags.relay.stuck()).toMatchObject({ id, kind: "kv", target: t.environmentId });

    // Parked, it is still stuck (the environment's snapshot did not go out), and older.
    await eventually(() => h.flags.relay.parked() === 1, 20_000, "parked");
    const parkedReason = await eventually(
      async () => (await readiness()).failing["flags.outbox"]?.match(/is parked after 3 publish attempts/),
      10_000,
      "parked in readiness",
    );
    expect(parkedReason).toBeTruthy();

    // The runbook's remedy: republish the environment; the parked message is superseded.
    const republished = await h.client(FlagService, t.ownerToken).republishSnapshot({ environmentId: t.environmentId, reason: "stuck outbox" });
    expect(republished.supersededParked).toBe(1);
    await eventually(async () => (await readiness()).status === 200, 10_000, "ready again");
    await eventually(async () => (await stuckAge()) === 0, 10_000, "no stuck age");
    expect(h.flags.relay.stuck()).toBeUndefined();
  });
});
