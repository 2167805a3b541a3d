/** The analytics service's tables (kysely types). Aggregates are double precision: exact for integers below 2^53. */
import type { ColumnType, Selectable } from "kysely";

type Timestamp = ColumnType<Date, Date | string, Date | string>;
/** bigint columns arrive from pg as strings. */
type BigIntColumn = ColumnType<string, number | bigint | string, number | bigint | string>;

export interface MetricsTable {
  id: string;
  organization_id: string;
  project_id: string;
  key: string;
  name: string;
  event_name: string;
  /** conversion | count | sum | mean | ratio | quantile | retention */
  kind: string;
  /** increase | decrease */
  direction: string;
  /** The settings of metric-types/definition.ts (defaults: none). */
  denominator_event_name: ColumnType<string, string | undefined, string>;
  /** '' (the default) | count | sum */
  numerator_aggregation: ColumnType<string, string | undefined, string>;
  denominator_aggregation: ColumnType<string, string | undefined, string>;
  quantile: ColumnType<number, number | undefined, number>;
  window_seconds: ColumnType<number, number | undefined, number>;
  retention_start_days: ColumnType<number, number | undefined, number>;
  retention_end_days: ColumnType<number, number | undefined, number>;
  cap_value: ColumnType<number, number | undefined, number>;
  cap_quantile: ColumnType<number, number | undefined, number>;
  created_at: ColumnType<Date, Date | string | undefined, Date | string>;
}

export interface ExperimentsTable {
  id: string;
  organization_id: string;
  project_id: string;
  environment_id: string;
  flag_key: string;
  key: string;
  name: string;
  hypothesis: string;
  /** [{ variant, weight }] */
  variants: ColumnType<{ variant: string; weight: number }[], string, string>;
  control_variant: string;
  /** { primary: [], secondary: [], guardrail: [] } metric keys. */
  metric_keys: ColumnType<{ primary: string[]; secondary: string[]; guardrail: string[] }, string, string>;
  /** Metric ids by key, frozen at creation (the pipeline reads these). */
  metric_ids: ColumnType<Record<string, string>, string, string>;
  layer_key: string;
  layer_share_percent: number;
  layer_start: number | null;
  layer_end: number | null;
  /** draft | starting | running | stopping | stopped (starting/stopping: the flag change is in progress). */
  status: string;
  start_time: Timestamp | null;
  stop_time: Timestamp | null;
  shipped_variant: string;
  bandit: ColumnType<{ enabled: boolean; intervalSeconds: number; minSharePercent: number } | null, string | null, string | null>;
  /** The flag environment as it was before the start (rules as proto JSON), restored on stop. */
  saved_environment: ColumnType<unknown, string | null, string | null>;
  bandit_run_at: Timestamp | null;
  /** Analysis settings: vane.experiments.v1.ExperimentSettings as proto JSON ({} = defaults). */
  settings: ColumnType<unknown, string | undefined, string>;
  version: BigIntColumn;
  created_at: ColumnType<Date, Date | string | undefined, Date | string>;
}

/** Event ids applied per environment: the dedupe key, written in the transaction that applies the event. */
export interface ProcessedEventsTable {
  environment_id: string;
  event_id: string;
  processed_at: ColumnType<Date, Date | string | undefined, Date | string>;
}

/** The first exposure of a unit to an experiment fixes its variant. */
export interface AssignmentsTable {
  experiment_id: string;
  unit_key: string;
  environment_id: string;
  variant: string;
  first_exposure_at: Timestamp;
  conflicting_exposures: number;
}

/** Tracked events of metric event names, with their time: split at a unit's exposure time. */
export interface UnitEventsTable {
  environment_id: string;
  unit_key: string;
  event_id: string;
  event_name: string;
  time: Timestamp;
  value: number;
}

/** One bandit re-weighting (or a failed attempt, with its error). */
export interface BanditRunsTable {
  id: string;
  experiment_id: string;
  run_at: ColumnType<Date, Date | string | undefined, Date | string>;
  /** Weights per variant, in the experiment's variant order. */
  weights: ColumnType<number[], string, string>;
  probability_best: ColumnType<number[], string, string>;
  /** The flags config version the re-weighting produced. */
  flag_version: BigIntColumn | null;
  error: ColumnType<string, string | undefined, string>;
}

/** A unit's totals of a metric's event since its first exposure, and its pre-exposure covariate. */
export interface UnitMetricTotalsTable {
  experiment_id: string;
  metric_id: string;
  unit_key: string;
  count: number;
  sum: number;
  covariate: number;
}

/** The per-variant sums of one metric that results are computed from. */
export interface VariantSums {
  units: number;
  sum: number;
  sum_squares: number;
  count_sum: number;
  count_squares: number;
  sum_count_product: number;
  cov_sum: number;
  cov_squares: number;
  cov_product: number;
}

/** Per-day increments of the per-variant sums of one metric; the sum over days is the aggregate. */
export interface VariantDailyTable extends VariantSums {
  experiment_id: string;
  metric_id: string;
  variant: string;
  day: ColumnType<string, string, string>;
}

/** Per-day increments of assigned and conflicting units per variant. */
export interface ExposureDailyTable {
  experiment_id: string;
  variant: string;
  day: ColumnType<string, string, string>;
  units: number;
  conflicting_units: number;
  conflicting_exposures: number;
}

/** How far the pipeline has applied the stream, per consumer (pipeline/consumer.ts). */
export interface ConsumerPositionsTable {
  consumer: string;
  /** Every event up to this stream sequence is applied. */
  stream_seq: ColumnType<string, string | number | bigint, string | number | bigint>;
  updated_at: ColumnType<Date, Date | string | undefined, Date | string>;
}

export interface AnalyticsDatabase {
  consumer_positions: ConsumerPositionsTable;
  metrics: MetricsTable;
  experiments: ExperimentsTable;
  processed_events: ProcessedEventsTable;
  assignments: AssignmentsTable;
  unit_events: UnitEventsTable;
  bandit_runs: BanditRunsTable;
  unit_metric_totals: UnitMetricTotalsTable;
  variant_daily: VariantDailyTable;
  exposure_daily: ExposureDailyTable;
}

export type MetricRow = Selectable<MetricsTable>;
export type ExperimentRow = Selectable<ExperimentsTable>;
