import { type Kysely, sql } from "kysely";

// Frozen: never edit a migration that has shipped; add a new one.
// Dimension breakdowns: an experiment's chosen context attributes, and on each assignment the
// unit's values of them from its first exposure (they stick with the unit, like its variant).
export async function up(db: Kysely<any>): Promise<void> {
  await sql`alter table experiments add column breakdown_dimensions jsonb not null default '[]'`.execute(db);
  await sql`alter table assignments add column dimensions jsonb not null default '{}'`.execute(db);
}

export async function down(db: Kysely<any>): Promise<void> {
  await sql`alter table assignments drop column dimensions`.execute(db);
  await sql`alter table experiments drop column breakdown_dimensions`.execute(db);
}
