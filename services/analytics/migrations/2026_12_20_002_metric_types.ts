import { type Kysely, sql } from "kysely";

// Frozen: never edit a migration that has shipped; add a new one.
//  - Metrics gain the ratio, quantile and retention kinds and their settings (a ratio's
//    denominator event and aggregations, the quantile, a conversion window after exposure, the
//    retention window in days, an absolute or quantile cap). Defaults keep existing metrics as
//    they were. See metric-types/definition.ts for which settings go with which kind.
export async function up(db: Kysely<any>): Promise<void> {
  await sql`alter table metrics drop constraint metrics_kind_check`.execute(db);
  await sql`alter table metrics add constraint metrics_kind_check check (kind in ('conversion', 'count', 'sum', 'mean', 'ratio', 'quantile', 'retention'))`.execute(
    db,
  );
  await sql`alter table metrics
    add column denominator_event_name text not null default '',
    add column numerator_aggregation text not null default '' check (numerator_aggregation in ('', 'count', 'sum')),
    add column denominator_aggregation text not null default '' check (denominator_aggregation in ('', 'count', 'sum')),
    add column quantile double precision not null default 0,
    add column window_seconds integer not null default 0,
    add column retention_start_days integer not null default 0,
    add column retention_end_days integer not null default 0,
    add column cap_value double precision not null default 0,
    add column cap_quantile double precision not null default 0`.execute(db);
}

export async function down(db: Kysely<any>): Promise<void> {
  await sql`alter table metrics
    drop column denominator_event_name, drop column numerator_aggregation, drop column denominator_aggregation,
    drop column quantile, drop column window_seconds, drop column retention_start_days, drop column retention_end_days,
    drop column cap_value, drop column cap_quantile`.execute(db);
  await sql`alter table metrics drop constraint metrics_kind_check`.execute(db);
  await sql`alter table metrics add constraint metrics_kind_check check (kind in ('conversion', 'count', 'sum', 'mean'))`.execute(db);
}
