import { sql } from "kysely";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createDatabase, type Database } from "#lib/data/db.ts";
import { createOutboxRelay, notifyOutbox, type OutboxRecord } from "#lib/data/outbox.ts";
import { dropSchema, testDatabaseUrl, uniqueName } from "#test/support/harness.ts";

const schema = uniqueName("outbox_test");
let database: Database<any>;

beforeAll(async () => {
  database = await createDatabase({ url: testDatabaseUrl, schema });
  await sql`create table outbox (id bigserial primary key, kind text not null, target text not null, payload bytea not null,
    msg_id text not null, headers jsonb not null default '{}', created_at timestamptz not null default now(), published_at timestamptz,
    ordering_key text, attempts integer not null default 0, parked_at timestamptz, last_error text)`.execute(database.db);
});
afterAll(async () => {
  await database?.destroy();
  await dropSchema(testDatabaseUrl, schema);
});

const insert = async (n: number, from = 0) => {
  await database.db.transaction().execute(async (trx) => {
    for (let i = from; i < from + n; i++) {
      await sql`insert into outbox (kind, target, payload, msg_id) values ('event', 't', ${Buffer.from([i])}, ${String(i)})`.execute(trx);
    }
    await notifyOutbox(trx, `${schema}_ch`);
  });
};

describe("createOutboxRelay", () => {
  it("publishes in order, retries a failing row without skipping it, and has one leader at a time", async () => {
    const seen: string[] = [];
    let failures = 0;
    const publish = async (r: OutboxRecord) => {
      // Every 7th row fails twice before it goes through.
      if (Number(r.msgId) % 7 === 3 && failures < 2) {
        failures++;
        throw new Error("broker down");
      }
      if (Number(r.msgId) % 7 === 4) failures = 0;
      seen.push(r.msgId);
    };
    const opts = { pool: database.pool, channel: `${schema}_ch`, lockName: `${schema}:lock`, publish, pollIntervalMs: 100, retryMinMs: 5, retryMaxMs: 20 };
    const a = createOutboxRelay(opts);
    const b = createOutboxRelay(opts);
    try {
      await insert(20);
      await new Promise((r) => setTimeout(r, 50));
      await insert(20, 20);
      const leader = await Promise.race([a.drained(10_000).then(() => a), b.drained(10_000).then(() => b)]);
      expect(seen).toEqual(Array.from({ length: 40 }, (_, i) => String(i)));
      expect([a.isLeader(), b.isLeader()].filter(Boolean)).toEqual([true]);
      expect(leader.backlog()).toBe(0);
      // The leader goes away: the other takes over from the first unpublished row.
      await leader.stop();
      await insert(5, 40);
      const other = leader === a ? b : a;
      await other.drained(10_000);
      expect(seen).toEqual(Array.from({ length: 45 }, (_, i) => String(i)));
      const { rows } = await sql<{ n: string }>`select count(*) as n from outbox where published_at is null`.execute(database.db);
      expect(Number(rows[0].n)).toBe(0);
    } finally {
      await a.stop();
      await b.stop();
    }
  });

  it("orders per key: a key that keeps failing is retried, then parked, and never holds back another key", async () => {
    await sql`delete from outbox`.execute(database.db);
    const seen: string[] = [];
    const publish = async (r: OutboxRecord) => {
      if (r.msgId === "poison") throw new Error("message too large");
      seen.push(r.msgId);
    };
    const relay = createOutboxRelay({
      pool: database.pool,
      channel: `${schema}_ch`,
      lockName: `${schema}:lock2`,
      publish,
      pollIntervalMs: 100,
      retryMinMs: 5,
      retryMaxMs: 20,
      maxAttempts: 4,
    });
    try {
      await database.db.transaction().execute(async (trx) => {
        // Key a: the poisoned row first, then two that would succeed; key b interleaved.
        const rows = [
          ["a", "poison"],
          ["b", "b1"],
          ["a", "a2"],
          ["b", "b2"],
          ["a", "a3"],
          ["b", "b3"],
        ];
        for (const [key, id] of rows) {
          await sql`insert into outbox (kind, target, ordering_key, payload, msg_id) values ('event', 'shared.subject', ${key}, ${Buffer.from(id)}, ${id})`.execute(
            trx,
          );
        }
        await notifyOutbox(trx, `${schema}_ch`);
      });
      await relay.drained(10_000);
      // b went on while a retried; a's later rows followed, in order, once the poison was parked.
      expect(seen.filter((id) => id.startsWith("b"))).toEqual(["b1", "b2", "b3"]);
      expect(seen.filter((id) => id.startsWith("a"))).toEqual(["a2", "a3"]);
      expect(seen.indexOf("b3")).toBeLessThan(seen.indexOf("a2"));
      const { rows } = await sql<{ msg_id: string; attempts: number; parked: boolean; last_error: string }>`
        select msg_id, attempts, parked_at is not null as parked, last_error from outbox where published_at is null`.execute(database.db);
      expect(rows).toEqual([{ msg_id: "poison", attempts: 4, parked: true, last_error: "message too large" }]);
      expect(relay.parked()).toBe(1);
      expect(relay.backlog()).toBe(0);
    } finally {
      await relay.stop();
    }
  });
});
