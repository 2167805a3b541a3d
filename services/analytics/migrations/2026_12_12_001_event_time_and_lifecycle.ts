import { type Kysely, sql } from "kysely";

// Frozen: never edit a migration that has shipped; add a new one.
//  - processed_events is keyed per environment: clients choose event ids, so two tenants may both
//    send "evt-1". Rows from before (environment '') can only collide with unparseable messages.
//  - unit_events keeps each tracked event of a metric with its time, so whether it counts before or
//    after a unit's exposure is decided by time, also when the exposure arrives late. It replaces
//    unit_event_totals (lifetime totals, which could not be split at an exposure's time).
//  - Experiments gain the transitional states of a start or stop in progress (the intent is
//    recorded before the flag changes), one active experiment per flag and environment enforced by
//    a unique index, and a record of bandit runs.
export async function up(db: Kysely<any>): Promise<void> {
  await sql`alter table processed_events add column environment_id text not null default ''`.execute(db);
  await sql`alter table processed_events drop constraint processed_events_pkey`.execute(db);
  await sql`alter table processed_events add constraint processed_events_pkey primary key (environment_id, event_id)`.execute(db);

  await db.schema
    .createTable("unit_events")
    .addColumn("environment_id", "uuid", (c) => c.notNull())
    .addColumn("unit_key", "text", (c) => c.notNull())
    .addColumn("event_id", "text", (c) => c.notNull())
    .addColumn("event_name", "text", (c) => c.notNull())
    .addColumn("time", sql`timestamptz(3)`, (c) => c.notNull())
    .addColumn("value", "double precision", (c) => c.notNull())
    .addPrimaryKeyConstraint("unit_events_pk", ["environment_id", "unit_key", "event_id"])
    .execute();
  await db.schema.dropTable("unit_event_totals").execute();

  await sql`alter table experiments drop constraint experiments_status_check`.execute(db);
  await sql`alter table experiments add constraint experiments_status_check check (status in ('draft', 'starting', 'running', 'stopping', 'stopped'))`.execute(
    db,
  );
  await sql`create unique index experiments_one_active_per_flag on experiments (environment_id, flag_key) where status in ('starting', 'running', 'stopping')`.execute(
    db,
  );

  await db.schema
    .createTable("bandit_runs")
    .addColumn("id", "uuid", (c) => c.primaryKey())
    .addColumn("experiment_id", "uuid", (c) => c.notNull())
    .addColumn("run_at", sql`timestamptz(3)`, (c) => c.notNull().defaultTo(sql`now()`))
    .addColumn("weights", "jsonb", (c) => c.notNull())
    .addColumn("probability_best", "jsonb", (c) => c.notNull())
    .addColumn("flag_version", "bigint")
    .addColumn("error", "text", (c) => c.notNull().defaultTo(""))
    .execute();
  await db.schema.createIndex("bandit_runs_experiment").on("bandit_runs").columns(["experiment_id", "run_at"]).execute();
}

export async function down(db: Kysely<any>): Promise<void> {
  await db.schema.dropTable("bandit_runs").execute();
  await sql`drop index experiments_one_active_per_flag`.execute(db);
  await sql`alter table experiments drop constraint experiments_status_check`.execute(db);
  await sql`alter table experiments add constraint experiments_status_check check (status in ('draft', 'running', 'stopped'))`.execute(db);
  await db.schema
    .createTable("unit_event_totals")
    .addColumn("environment_id", "uuid", (c) => c.notNull())
    .addColumn("unit_key", "text", (c) => c.notNull())
    .addColumn("event_name", "text", (c) => c.notNull())
    .addColumn("count", "double precision", (c) => c.notNull())
    .addColumn("sum", "double precision", (c) => c.notNull())
    .addPrimaryKeyConstraint("unit_event_totals_pk", ["environment_id", "unit_key", "event_name"])
    .execute();
  await db.schema.dropTable("unit_events").execute();
  await sql`alter table processed_events drop constraint processed_events_pkey`.execute(db);
  await sql`alter table processed_events add constraint processed_events_pkey primary key (event_id)`.execute(db);
  await sql`alter table processed_events drop column environment_id`.execute(db);
}
