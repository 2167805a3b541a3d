import { sql, type Kysely, type Migration } from "kysely";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createDatabase, type Database } from "#lib/data/db.ts";
import { MigrationError, migrateToLatest, migrationStatus, runMigrationsCli } from "#lib/data/migrations.ts";
import { dropSchema, testDatabaseUrl, uniqueName } from "#test/support/harness.ts";

const init: Migration = {
  async up(db: Kysely<any>) {
    await db.schema
      .createTable("widgets")
      .addColumn("id", "text", (c) => c.primaryKey())
      .execute();
  },
};
const addName: Migration = {
  async up(db: Kysely<any>) {
    await db.schema.alterTable("widgets").addColumn("name", "text").execute();
  },
};
const broken: Migration = {
  async up(db: Kysely<any>) {
    await sql`select * from no_such_table`.execute(db);
  },
};

const schemas: string[] = [];
const handles: Database<any>[] = [];

async function open(): Promise<{ schema: string; database: Database<any> }> {
  const schema = uniqueName("migtest");
  schemas.push(schema);
  const database = await createDatabase({ url: testDatabaseUrl, schema, poolSize: 2 });
  handles.push(database);
  return { schema, database };
}

afterAll(async () => {
  await Promise.all(handles.map((h) => h.destroy()));
  for (const s of schemas) await dropSchema(testDatabaseUrl, s);
});

describe("migrateToLatest", () => {
  let schema: string;
  let database: Database<any>;
  beforeAll(async () => ({ schema, database } = await open()));

  it("applies migrations in name order, in the service schema, once", async () => {
    // Object order deliberately reversed: name order must win.
    const migrations = { "2026_11_24_001_add_name": addName, "2026_11_23_001_init": init };
    expect(await migrateToLatest(database.db, migrations, { schema })).toEqual(["2026_11_23_001_init", "2026_11_24_001_add_name"]);
    expect(await migrateToLatest(database.db, migrations, { schema })).toEqual([]);
    const tables = await sql<{ table_name: string }>`
      select table_name from information_schema.tables where table_schema = ${schema} order by table_name`.execute(database.db);
    expect(tables.rows.map((r) => r.table_name)).toEqual(["kysely_migration", "kysely_migration_lock", "widgets"]);
    const status = await migrationStatus(database.db, migrations, { schema });
    expect(status.map((s) => s.executedAt !== null)).toEqual([true, true]);
  });

  it("throws a MigrationError naming the failed migration and keeps earlier ones", async () => {
    const other = await open();
    const err = await migrateToLatest(other.database.db, { "2026_11_23_001_init": init, "2026_11_23_002_broken": broken }, { schema: other.schema }).catch(
      (e: unknown) => e,
    );
    expect(err).toBeInstanceOf(MigrationError);
    expect((err as MigrationError).migrationName).toBe("2026_11_23_002_broken");
    expect((err as MigrationError).message).toContain("2026_11_23_002_broken");
    expect((err as MigrationError).applied).toEqual(["2026_11_23_001_init"]);
  });

  it("is safe when several replicas migrate at once", async () => {
    const other = await open();
    const extra = await Promise.all(Array.from({ length: 2 }, () => createDatabase({ url: testDatabaseUrl, schema: other.schema, poolSize: 1 })));
    handles.push(...extra);
    const migrations = { "2026_11_23_001_init": init, "2026_11_24_001_add_name": addName };
    const runs = await Promise.all([other.database, ...extra].map((d) => migrateToLatest(d.db, migrations, { schema: other.schema })));
    expect(runs.flat().sort()).toEqual(["2026_11_23_001_init", "2026_11_24_001_add_name"]);
  });

  it("rejects badly named migrations and handles on the wrong schema", async () => {
    await expect(migrateToLatest(database.db, { init }, { schema })).rejects.toThrow(/2026_11_23_001_init/);
    const other = await open();
    await expect(migrateToLatest(other.database.db, {}, { schema })).rejects.toThrow(/search_path/);
  });
});

describe("runMigrationsCli", () => {
  it("migrates the named services and reports status", async () => {
    const identity = uniqueName("migcli");
    schemas.push(identity);
    const lines: string[] = [];
    const targets = { identity: { schema: identity, migrations: { "2026_11_23_001_init": init } } };
    const base = { targets, databaseUrl: testDatabaseUrl, print: (l: string) => lines.push(l) };
    expect(await runMigrationsCli({ ...base, args: ["--status", "identity"] })).toBe(0);
    expect(lines.pop()).toMatch(/^identity\tpending\t2026_11_23_001_init$/);
    expect(await runMigrationsCli({ ...base, args: ["all"] })).toBe(0);
    expect(lines.pop()).toBe("identity: applied 2026_11_23_001_init");
    expect(await runMigrationsCli({ ...base, args: ["identity"] })).toBe(0);
    expect(lines.pop()).toBe("identity: up to date");
    expect(await runMigrationsCli({ ...base, args: ["nope"] })).toBe(2);
    expect(await runMigrationsCli({ ...base, args: [] })).toBe(2);
  });

  it("returns 1 when a migration fails", async () => {
    const flags = uniqueName("migcli");
    schemas.push(flags);
    const lines: string[] = [];
    const code = await runMigrationsCli({
      args: ["flags"],
      targets: { flags: { schema: flags, migrations: { "2026_11_23_001_broken": broken } } },
      databaseUrl: testDatabaseUrl,
      print: (l) => lines.push(l),
    });
    expect(code).toBe(1);
    expect(lines.join("\n")).toContain("2026_11_23_001_broken");
  });
});

describe("introspection", () => {
  it("lists only the handle's own schema, its bookkeeping tables only when asked", async () => {
    const { schema, database } = await open();
    const { database: other } = await open();
    await migrateToLatest(database.db, { "2026_01_01_001_init": init }, { schema });
    await sql`create table gadgets (n bigserial primary key, label text not null default 'x')`.execute(other.db);
    const tables = await database.db.introspection.getTables();
    expect(tables.map((t) => [t.schema, t.name])).toEqual([[schema, "widgets"]]);
    expect(tables[0].columns).toEqual([expect.objectContaining({ name: "id", dataType: "text", isNullable: false, isAutoIncrementing: false })]);
    const own = await database.db.introspection.getTables({ withInternalKyselyTables: true });
    expect(own.map((t) => t.name).sort()).toEqual(["kysely_migration", "kysely_migration_lock", "widgets"]);
    const [gadgets] = await other.db.introspection.getTables();
    expect(gadgets.columns.map((c) => [c.name, c.isAutoIncrementing, c.hasDefaultValue])).toEqual([
      ["n", true, true],
      ["label", false, true],
    ]);
  });
});
