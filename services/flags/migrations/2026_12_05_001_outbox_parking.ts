import { type Kysely, sql } from "kysely";

// Frozen: never edit a migration that has shipped; add a new one.
// The outbox relays in order per key (an environment, a flag) and parks a row that keeps failing.
export async function up(db: Kysely<any>): Promise<void> {
  await db.schema
    .alterTable("outbox")
    .addColumn("ordering_key", "text")
    .addColumn("attempts", "integer", (c) => c.notNull().defaultTo(0))
    .addColumn("parked_at", sql`timestamptz(3)`)
    .addColumn("last_error", "text")
    .execute();
  await sql`create index outbox_pending on outbox (id) where published_at is null and parked_at is null`.execute(db);
}

export async function down(db: Kysely<any>): Promise<void> {
  await sql`drop index if exists outbox_pending`.execute(db);
  await db.schema.alterTable("outbox").dropColumn("ordering_key").dropColumn("attempts").dropColumn("parked_at").dropColumn("last_error").execute();
}
