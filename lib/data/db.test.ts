import { sql, type Generated } from "kysely";
import pg from "pg";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  assertSchemaName,
  createDatabase,
  isConnectionError,
  isForeignKeyViolation,
  isQueryCanceled,
  isRetryableTransactionError,
  isSerializationFailure,
  isUniqueViolation,
  pgConstraint,
  withTransaction,
  type Database,
} from "#lib/data/db.ts";
import { dropSchema, testDatabaseUrl, uniqueName } from "#test/support/harness.ts";

interface TestDB {
  counters: { id: string; value: number };
  items: { id: Generated<number>; counter_id: string; name: string };
}

const schema = uniqueName("dbtest");
let database: Database<TestDB>;

beforeAll(async () => {
  database = await createDatabase<TestDB>({ url: testDatabaseUrl, schema, poolSize: 4, statementTimeoutMs: 2_000 });
  const { db } = database;
  await db.schema
    .createTable("counters")
    .addColumn("id", "text", (c) => c.primaryKey())
    .addColumn("value", "integer", (c) => c.notNull())
    .execute();
  await db.schema
    .createTable("items")
    .addColumn("id", "serial", (c) => c.primaryKey())
    .addColumn("counter_id", "text", (c) => c.notNull().references("counters.id"))
    .addColumn("name", "text", (c) => c.notNull().unique())
    .execute();
});

afterAll(async () => {
  await database?.destroy();
  await dropSchema(testDatabaseUrl, schema);
});

describe("createDatabase", () => {
  it("puts unqualified tables in the service schema on every connection", async () => {
    const rows = await sql<{ table_schema: string }>`
      select table_schema from information_schema.tables where table_name = 'counters' and table_schema = ${schema}`.execute(database.db);
    expect(rows.rows).toHaveLength(1);
    // Several checkouts at once use several connections: each must see the schema.
    const paths = await Promise.all(Array.from({ length: 4 }, () => sql<{ search_path: string }>`show search_path`.execute(database.db)));
    for (const p of paths) expect(p.rows[0].search_path).toBe(schema);
  });

  it("creates the schema safely when several processes start at once", async () => {
    const other = uniqueName("dbtest_race");
    const handles = await Promise.all(Array.from({ length: 4 }, () => createDatabase({ url: testDatabaseUrl, schema: other, poolSize: 1 })));
    await Promise.all(handles.map((h) => h.ping()));
    await Promise.all(handles.map((h) => h.destroy()));
    await dropSchema(testDatabaseUrl, other);
  });

  it("rejects schema names that would need quoting", () => {
    expect(() => assertSchemaName("Identity")).toThrow();
    expect(() => assertSchemaName("a;drop")).toThrow();
    expect(() => assertSchemaName("flags_v1")).not.toThrow();
  });

  it("pings, and honours an aborted signal", async () => {
    await database.ping();
    await expect(database.ping(AbortSignal.abort())).rejects.toThrow();
  });

  it("fails a query whose connection dies while checked out, as a connection error, without crashing the process", async () => {
    const killer = new pg.Client({ connectionString: testDatabaseUrl });
    await killer.connect();
    try {
      const err = await database.db
        .connection()
        .execute(async (conn) => {
          const { rows } = await sql<{ pid: number }>`select pg_backend_pid() as pid`.execute(conn);
          const sleeping = sql`select pg_sleep(5)`.execute(conn).then(
            () => undefined,
            (e: unknown) => e,
          );
          await killer.query("select pg_terminate_backend($1)", [rows[0].pid]);
          throw await sleeping;
        })
        .catch((e: unknown) => e);
      expect(isConnectionError(err)).toBe(true);
    } finally {
      await killer.end();
    }
    // The pool replaces the dead connection: pings succeed again (the pool may hand out the dead
    // connection once more before it has seen the socket close, so wait on the condition).
    let healthy = false;
    for (const end = Date.now() + 10_000; !healthy && Date.now() < end;) {
      healthy = await database.ping().then(
        () => true,
        (e: unknown) => (isConnectionError(e) ? false : Promise.reject(e)),
      );
    }
    expect(healthy).toBe(true);
  });

  it("fails to start, with a connection error, when the server is unreachable", async () => {
    const err = await createDatabase({ url: "postgres://postgres@127.0.0.1:1/none", schema: "x", connectTimeoutMs: 1_000 }).catch((e: unknown) => e);
    expect(isConnectionError(err)).toBe(true);
  });
});

describe("pg error mapping", () => {
  it("recognises unique and foreign-key violations with the constraint name", async () => {
    const { db } = database;
    await db.insertInto("counters").values({ id: "u1", value: 0 }).execute();
    await db.insertInto("items").values({ counter_id: "u1", name: "dup" }).execute();
    const dup = await db
      .insertInto("items")
      .values({ counter_id: "u1", name: "dup" })
      .execute()
      .catch((e: unknown) => e);
    expect(isUniqueViolation(dup)).toBe(true);
    expect(pgConstraint(dup)).toBe("items_name_key");
    const fk = await db
      .insertInto("items")
      .values({ counter_id: "missing", name: "x" })
      .execute()
      .catch((e: unknown) => e);
    expect(isForeignKeyViolation(fk)).toBe(true);
    expect(isUniqueViolation(fk)).toBe(false);
    expect(isUniqueViolation(new Error("nope"))).toBe(false);
  });

  it("recognises a statement timeout", async () => {
    // A tiny per-transaction timeout keeps the test fast; the pool default is 2 s here.
    const err = await database.db
      .transaction()
      .execute(async (trx) => {
        await sql`set local statement_timeout = 1`.execute(trx);
        await sql`select pg_sleep(1)`.execute(trx);
      })
      .catch((e: unknown) => e);
    expect(isQueryCanceled(err)).toBe(true);
  });
});

describe("withTransaction", () => {
  it("retries a serialization failure and then succeeds", async () => {
    const { db } = database;
    await db.insertInto("counters").values({ id: "s1", value: 0 }).execute();
    let attempts = 0;
    // Make the first attempt conflict deterministically: read the row in a
    // serializable transaction, let a concurrent transaction update it, then write.
    const result = await withTransaction(
      db,
      async (trx) => {
        attempts++;
        const row = await trx.selectFrom("counters").select("value").where("id", "=", "s1").executeTakeFirstOrThrow();
        if (attempts === 1) {
          await db.updateTable("counters").set({ value: 100 }).where("id", "=", "s1").execute();
        }
        await trx
          .updateTable("counters")
          .set({ value: row.value + 1 })
          .where("id", "=", "s1")
          .execute();
        return row.value + 1;
      },
      { isolation: "serializable", retries: 2 },
    );
    expect(attempts).toBe(2);
    expect(result).toBe(101);
  });

  it("gives up after the retry budget and surfaces the serialization failure", async () => {
    const { db } = database;
    await db.insertInto("counters").values({ id: "s2", value: 0 }).execute();
    let attempts = 0;
    const err = await withTransaction(
      db,
      async (trx) => {
        attempts++;
        await trx.selectFrom("counters").select("value").where("id", "=", "s2").executeTakeFirstOrThrow();
        await db.updateTable("counters").set({ value: attempts }).where("id", "=", "s2").execute();
        await trx.updateTable("counters").set({ value: -1 }).where("id", "=", "s2").execute();
      },
      { isolation: "repeatable read", retries: 1 },
    ).catch((e: unknown) => e);
    expect(attempts).toBe(2);
    expect(isSerializationFailure(err)).toBe(true);
    expect(isRetryableTransactionError(err)).toBe(true);
  });

  it("does not retry other errors", async () => {
    let attempts = 0;
    const err = await withTransaction(database.db, async () => {
      attempts++;
      throw new Error("domain");
    }).catch((e: unknown) => e);
    expect(attempts).toBe(1);
    expect((err as Error).message).toBe("domain");
  });
});
