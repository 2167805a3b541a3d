import { type Kysely, sql } from "kysely";

// Frozen: never edit a migration that has shipped; add a new one.
// The pipeline's own floor: the stream sequence up to which it has applied every event, committed
// with the aggregates, so it never waits on a server-side ack floor that stopped moving.
export async function up(db: Kysely<any>): Promise<void> {
  await db.schema
    .createTable("consumer_positions")
    .addColumn("consumer", "text", (c) => c.primaryKey())
    .addColumn("stream_seq", "bigint", (c) => c.notNull())
    .addColumn("updated_at", sql`timestamptz(3)`, (c) => c.notNull().defaultTo(sql`now()`))
    .execute();
}

export async function down(db: Kysely<any>): Promise<void> {
  await db.schema.dropTable("consumer_positions").ifExists().execute();
}
