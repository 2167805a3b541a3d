import { type Kysely, sql } from "kysely";

// Frozen: never edit a migration that has shipped; add a new one.
export async function up(db: Kysely<any>): Promise<void> {
  await db.schema
    .createTable("metrics")
    .addColumn("id", "uuid", (c) => c.primaryKey())
    .addColumn("organization_id", "uuid", (c) => c.notNull())
    .addColumn("project_id", "uuid", (c) => c.notNull())
    .addColumn("key", "text", (c) => c.notNull())
    .addColumn("name", "text", (c) => c.notNull())
    .addColumn("event_name", "text", (c) => c.notNull())
    .addColumn("kind", "text", (c) => c.notNull().check(sql`kind in ('conversion', 'count', 'sum', 'mean')`))
    .addColumn("direction", "text", (c) => c.notNull().check(sql`direction in ('increase', 'decrease')`))
    .addColumn("created_at", sql`timestamptz(3)`, (c) => c.notNull().defaultTo(sql`now()`))
    .addUniqueConstraint("metrics_project_key", ["project_id", "key"])
    .execute();
  await db.schema.createIndex("metrics_project_event").on("metrics").columns(["project_id", "event_name"]).execute();

  await db.schema
    .createTable("experiments")
    .addColumn("id", "uuid", (c) => c.primaryKey())
    .addColumn("organization_id", "uuid", (c) => c.notNull())
    .addColumn("project_id", "uuid", (c) => c.notNull())
    .addColumn("environment_id", "uuid", (c) => c.notNull())
    .addColumn("flag_key", "text", (c) => c.notNull())
    .addColumn("key", "text", (c) => c.notNull())
    .addColumn("name", "text", (c) => c.notNull())
    .addColumn("hypothesis", "text", (c) => c.notNull())
    .addColumn("variants", "jsonb", (c) => c.notNull())
    .addColumn("control_variant", "text", (c) => c.notNull())
    .addColumn("metric_keys", "jsonb", (c) => c.notNull())
    .addColumn("metric_ids", "jsonb", (c) => c.notNull())
    .addColumn("layer_key", "text", (c) => c.notNull().defaultTo(""))
    .addColumn("layer_share_percent", "double precision", (c) => c.notNull().defaultTo(0))
    .addColumn("layer_start", "integer")
    .addColumn("layer_end", "integer")
    .addColumn("status", "text", (c) => c.notNull().check(sql`status in ('draft', 'running', 'stopped')`))
    .addColumn("start_time", sql`timestamptz(3)`)
    .addColumn("stop_time", sql`timestamptz(3)`)
    .addColumn("shipped_variant", "text", (c) => c.notNull().defaultTo(""))
    .addColumn("bandit", "jsonb")
    .addColumn("saved_environment", "jsonb")
    .addColumn("bandit_run_at", sql`timestamptz(3)`)
    .addColumn("version", "bigint", (c) => c.notNull())
    .addColumn("created_at", sql`timestamptz(3)`, (c) => c.notNull().defaultTo(sql`now()`))
    .addUniqueConstraint("experiments_project_key", ["project_id", "key"])
    .execute();
  await db.schema.createIndex("experiments_layer").on("experiments").columns(["environment_id", "layer_key", "status"]).execute();

  await db.schema
    .createTable("processed_events")
    .addColumn("event_id", "text", (c) => c.primaryKey())
    .addColumn("processed_at", sql`timestamptz(3)`, (c) => c.notNull().defaultTo(sql`now()`))
    .execute();
  await db.schema.createIndex("processed_events_at").on("processed_events").column("processed_at").execute();

  await db.schema
    .createTable("assignments")
    .addColumn("experiment_id", "uuid", (c) => c.notNull())
    .addColumn("unit_key", "text", (c) => c.notNull())
    .addColumn("environment_id", "uuid", (c) => c.notNull())
    .addColumn("variant", "text", (c) => c.notNull())
    .addColumn("first_exposure_at", sql`timestamptz(3)`, (c) => c.notNull())
    .addColumn("conflicting_exposures", "integer", (c) => c.notNull().defaultTo(0))
    .addPrimaryKeyConstraint("assignments_pk", ["experiment_id", "unit_key"])
    .execute();
  await db.schema.createIndex("assignments_unit").on("assignments").columns(["environment_id", "unit_key"]).execute();

  await db.schema
    .createTable("unit_event_totals")
    .addColumn("environment_id", "uuid", (c) => c.notNull())
    .addColumn("unit_key", "text", (c) => c.notNull())
    .addColumn("event_name", "text", (c) => c.notNull())
    .addColumn("count", "double precision", (c) => c.notNull())
    .addColumn("sum", "double precision", (c) => c.notNull())
    .addPrimaryKeyConstraint("unit_event_totals_pk", ["environment_id", "unit_key", "event_name"])
    .execute();

  await db.schema
    .createTable("unit_metric_totals")
    .addColumn("experiment_id", "uuid", (c) => c.notNull())
    .addColumn("metric_id", "uuid", (c) => c.notNull())
    .addColumn("unit_key", "text", (c) => c.notNull())
    .addColumn("count", "double precision", (c) => c.notNull())
    .addColumn("sum", "double precision", (c) => c.notNull())
    .addColumn("covariate", "double precision", (c) => c.notNull())
    .addPrimaryKeyConstraint("unit_metric_totals_pk", ["experiment_id", "unit_key", "metric_id"])
    .execute();

  await db.schema
    .createTable("variant_daily")
    .addColumn("experiment_id", "uuid", (c) => c.notNull())
    .addColumn("metric_id", "uuid", (c) => c.notNull())
    .addColumn("variant", "text", (c) => c.notNull())
    .addColumn("day", "date", (c) => c.notNull())
    .addColumn("units", "double precision", (c) => c.notNull())
    .addColumn("sum", "double precision", (c) => c.notNull())
    .addColumn("sum_squares", "double precision", (c) => c.notNull())
    .addColumn("count_sum", "double precision", (c) => c.notNull())
    .addColumn("count_squares", "double precision", (c) => c.notNull())
    .addColumn("sum_count_product", "double precision", (c) => c.notNull())
    .addColumn("cov_sum", "double precision", (c) => c.notNull())
    .addColumn("cov_squares", "double precision", (c) => c.notNull())
    .addColumn("cov_product", "double precision", (c) => c.notNull())
    .addPrimaryKeyConstraint("variant_daily_pk", ["experiment_id", "metric_id", "variant", "day"])
    .execute();

  await db.schema
    .createTable("exposure_daily")
    .addColumn("experiment_id", "uuid", (c) => c.notNull())
    .addColumn("variant", "text", (c) => c.notNull())
    .addColumn("day", "date", (c) => c.notNull())
    .addColumn("units", "double precision", (c) => c.notNull())
    .addColumn("conflicting_units", "double precision", (c) => c.notNull())
    .addColumn("conflicting_exposures", "double precision", (c) => c.notNull())
    .addPrimaryKeyConstraint("exposure_daily_pk", ["experiment_id", "variant", "day"])
    .execute();
}

export async function down(db: Kysely<any>): Promise<void> {
  for (const t of ["exposure_daily", "variant_daily", "unit_metric_totals", "unit_event_totals", "assignments", "processed_events", "experiments", "metrics"]) {
    await db.schema.dropTable(t).execute();
  }
}
