import { type Kysely, sql } from "kysely";

// Protected environments: changes there need the admin role. Existing production environments
// become protected, as new ones are by default (docs/operations.md, "Upgrading").
// Frozen: never edit a migration that has shipped; add a new one.
export async function up(db: Kysely<any>): Promise<void> {
  await db.schema
    .alterTable("environments")
    .addColumn("protected", "boolean", (c) => c.notNull().defaultTo(false))
    .execute();
  await sql`update environments set protected = true where key = 'production'`.execute(db);
}

export async function down(db: Kysely<any>): Promise<void> {
  await db.schema.alterTable("environments").dropColumn("protected").execute();
}
