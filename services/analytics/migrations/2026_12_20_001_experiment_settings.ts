import { type Kysely, sql } from "kysely";

// Frozen: never edit a migration that has shipped; add a new one.
// Experiments carry their analysis settings (vane.experiments.v1.ExperimentSettings as proto
// JSON): '{}' is every default, which is how results were computed before.
export async function up(db: Kysely<any>): Promise<void> {
  await sql`alter table experiments add column settings jsonb not null default '{}'::jsonb`.execute(db);
}

export async function down(db: Kysely<any>): Promise<void> {
  await sql`alter table experiments drop column settings`.execute(db);
}
