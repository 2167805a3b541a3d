/** Identity's migrations on a database that already holds data. */
import { randomUUID } from "node:crypto";
import { afterAll, describe, expect, it } from "vitest";
import { createDatabase } from "#lib/data/db.ts";
import { migrateToLatest } from "#lib/data/migrations.ts";
import { dropSchema, testDatabaseUrl, uniqueName } from "#test/support/harness.ts";
import { migrations } from "../migrations/index.ts";

describe("identity migrations", () => {
  const schema = uniqueName("identity_mig");
  afterAll(() => dropSchema(testDatabaseUrl, schema));

  it("protects the production environments that existed before protection", async () => {
    const database = await createDatabase<any>({ url: testDatabaseUrl, schema });
    try {
      const before = Object.fromEntries(Object.entries(migrations).filter(([name]) => name < "2026_12_14_001"));
      await migrateToLatest(database.db, before, { schema });
      const org = randomUUID();
      const project = randomUUID();
      await database.db
        .insertInto("organizations")
        .values({ id: org, name: "o", slug: `o-${org.slice(0, 8)}` })
        .execute();
      await database.db.insertInto("projects").values({ id: project, organization_id: org, key: "web", name: "Web" }).execute();
      for (const key of ["development", "production"]) {
        await database.db.insertInto("environments").values({ id: randomUUID(), project_id: project, organization_id: org, key, name: key }).execute();
      }
      await migrateToLatest(database.db, migrations, { schema });
      const rows = await database.db.selectFrom("environments").select(["key", "protected"]).orderBy("key").execute();
      expect(rows).toEqual([
        { key: "development", protected: false },
        { key: "production", protected: true },
      ]);
    } finally {
      await database.destroy();
    }
  });
});
