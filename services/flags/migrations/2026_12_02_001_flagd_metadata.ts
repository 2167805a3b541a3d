import { type Kysely, sql } from "kysely";

// Frozen: never edit a migration that has shipped; add a new one.
// flagd metadata kept by ImportFlagd: per flag and environment, and per environment (flag set).
export async function up(db: Kysely<any>): Promise<void> {
  await db.schema
    .alterTable("flag_environments")
    .addColumn("metadata", "jsonb", (c) => c.notNull().defaultTo(sql`'{}'::jsonb`))
    .execute();
  await db.schema
    .createTable("environment_metadata")
    .addColumn("environment_id", "uuid", (c) => c.primaryKey())
    .addColumn("organization_id", "uuid", (c) => c.notNull())
    .addColumn("project_id", "uuid", (c) => c.notNull())
    .addColumn("metadata", "jsonb", (c) => c.notNull())
    .addColumn("updated_at", sql`timestamptz(3)`, (c) => c.notNull().defaultTo(sql`now()`))
    .execute();
}

export async function down(db: Kysely<any>): Promise<void> {
  await db.schema.dropTable("environment_metadata").ifExists().execute();
  await db.schema.alterTable("flag_environments").dropColumn("metadata").execute();
}
