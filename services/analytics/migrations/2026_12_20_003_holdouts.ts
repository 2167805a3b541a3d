import { type Kysely, sql } from "kysely";

// Frozen: never edit a migration that has shipped; add a new one.
// Holdouts are measured like experiments (two arms, "holdout" and "general", through the same
// pipeline and results), so they are rows of `experiments` of kind 'holdout', holding the flags
// they hold units out of. Their flag_key is `holdout:<key>`, never a flag's, so the one active
// experiment per flag index leaves them alone.
export async function up(db: Kysely<any>): Promise<void> {
  await sql`alter table experiments add column kind text not null default 'experiment' check (kind in ('experiment', 'holdout'))`.execute(db);
  await sql`alter table experiments add column holdout_flag_keys jsonb not null default '[]'`.execute(db);
}

export async function down(db: Kysely<any>): Promise<void> {
  await sql`delete from experiments where kind = 'holdout'`.execute(db);
  await sql`alter table experiments drop column holdout_flag_keys`.execute(db);
  await sql`alter table experiments drop column kind`.execute(db);
}
