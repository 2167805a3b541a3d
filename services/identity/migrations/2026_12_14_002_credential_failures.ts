import { sql, type Kysely } from "kysely";

// Failed credential exchanges per source address and per API key prefix, in fixed windows,
// shared by every identity replica (exchange-limits.ts). Rows older than a window are deleted.
// Frozen: never edit a migration that has shipped; add a new one.
export async function up(db: Kysely<any>): Promise<void> {
  await db.schema
    .createTable("credential_failures")
    .addColumn("dimension", "text", (c) => c.notNull().check(sql`dimension in ('source', 'key')`))
    .addColumn("subject", "text", (c) => c.notNull())
    .addColumn("window_start", sql`timestamptz(3)`, (c) => c.notNull())
    .addColumn("failures", "integer", (c) => c.notNull())
    .addPrimaryKeyConstraint("credential_failures_pkey", ["dimension", "subject", "window_start"])
    .execute();
  await db.schema.createIndex("credential_failures_window").on("credential_failures").column("window_start").execute();
}

export async function down(db: Kysely<any>): Promise<void> {
  await db.schema.dropTable("credential_failures").ifExists().execute();
}
