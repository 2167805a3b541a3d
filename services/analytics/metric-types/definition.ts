/**
 * A metric's kind and settings: from a CreateMetricRequest to the `metrics` row (refusing
 * settings that do not go with the kind, naming the field), and back to the contract's Metric.
 */
import { Aggregation, MetricKind } from "#gen/vane/experiments/v1/experiments_pb.js";
import type { CreateMetricRequest } from "#gen/vane/experiments/v1/experiment_service_pb.js";
import { invalidArgument } from "#lib/process/errors.ts";
import type { MetricRow } from "../schema.ts";

const KINDS: Record<string, MetricKind> = {
  conversion: MetricKind.CONVERSION,
  count: MetricKind.COUNT,
  sum: MetricKind.SUM,
  mean: MetricKind.MEAN,
  ratio: MetricKind.RATIO,
  quantile: MetricKind.QUANTILE,
  retention: MetricKind.RETENTION,
};
const KIND_NAMES = new Map(Object.entries(KINDS).map(([k, v]) => [v, k]));
const AGGREGATIONS: Record<string, Aggregation> = { "": Aggregation.UNSPECIFIED, count: Aggregation.COUNT, sum: Aggregation.SUM };
const AGGREGATION_NAMES = new Map(Object.entries(AGGREGATIONS).map(([k, v]) => [v, k]));

/** The settings columns of a metric row. */
export type MetricSettings = Pick<
  MetricRow,
  | "kind"
  | "denominator_event_name"
  | "numerator_aggregation"
  | "denominator_aggregation"
  | "quantile"
  | "window_seconds"
  | "retention_start_days"
  | "retention_end_days"
  | "cap_value"
  | "cap_quantile"
>;

/** The kind and settings of a new metric, or INVALID_ARGUMENT naming the field at fault. */
export function metricSettings(req: CreateMetricRequest): MetricSettings {
  const kind = KIND_NAMES.get(req.kind);
  if (!kind) throw invalidArgument(`kind must be one of ${Object.keys(KINDS).join(", ")}`);
  const refuse = (field: string, set: boolean, kinds: string) => {
    if (set) throw invalidArgument(`${field} applies to ${kinds} metrics only, not ${kind}`);
  };
  if (kind === "ratio") {
    if (!req.denominatorEventName) throw invalidArgument("denominator_event_name is required for a ratio metric");
  } else {
    refuse("denominator_event_name", req.denominatorEventName !== "", "ratio");
    refuse("numerator_aggregation", req.numeratorAggregation !== Aggregation.UNSPECIFIED, "ratio");
    refuse("denominator_aggregation", req.denominatorAggregation !== Aggregation.UNSPECIFIED, "ratio");
  }
  if (kind === "quantile") {
    if (!(req.quantile > 0 && req.quantile < 1)) throw invalidArgument("quantile is required for a quantile metric: strictly between 0 and 1 (0.9 for p90)");
  } else refuse("quantile", req.quantile !== 0, "quantile");
  if (kind === "retention") {
    if (!(req.retentionEndDays > req.retentionStartDays))
      throw invalidArgument("retention_end_days must be greater than retention_start_days (at most 366) for a retention metric");
    refuse("window_seconds", req.windowSeconds !== 0, "non-retention");
  } else {
    refuse("retention_start_days", req.retentionStartDays !== 0, "retention");
    refuse("retention_end_days", req.retentionEndDays !== 0, "retention");
  }
  const cappable = ["count", "sum", "mean", "ratio"];
  if (!cappable.includes(kind)) {
    refuse("cap_value", req.capValue !== 0, cappable.join(", "));
    refuse("cap_quantile", req.capQuantile !== 0, cappable.join(", "));
  }
  if (req.capValue !== 0 && req.capQuantile !== 0) throw invalidArgument("cap_value and cap_quantile: set one of them, not both");
  return {
    kind,
    denominator_event_name: req.denominatorEventName,
    numerator_aggregation: AGGREGATION_NAMES.get(req.numeratorAggregation) ?? "",
    denominator_aggregation: AGGREGATION_NAMES.get(req.denominatorAggregation) ?? "",
    quantile: req.quantile,
    window_seconds: req.windowSeconds,
    retention_start_days: req.retentionStartDays,
    retention_end_days: req.retentionEndDays,
    cap_value: req.capValue,
    cap_quantile: req.capQuantile,
  };
}

/** The contract's fields for a metric row's kind and settings. */
export function metricFields(m: MetricSettings) {
  return {
    kind: KINDS[m.kind],
    denominatorEventName: m.denominator_event_name,
    numeratorAggregation: AGGREGATIONS[m.numerator_aggregation] ?? Aggregation.UNSPECIFIED,
    denominatorAggregation: AGGREGATIONS[m.denominator_aggregation] ?? Aggregation.UNSPECIFIED,
    quantile: m.quantile,
    windowSeconds: m.window_seconds,
    retentionStartDays: m.retention_start_days,
    retentionEndDays: m.retention_end_days,
    capValue: m.cap_value,
    capQuantile: m.cap_quantile,
  };
}

/**
 * Whether results compute the metric from the kept events at results time (metric-types/load.ts)
 * rather than from the pipeline's per-day sums: every new kind, and any metric with a window or cap.
 */
export function computedAtResultsTime(m: MetricSettings): boolean {
  return !["conversion", "count", "sum", "mean"].includes(m.kind) || m.window_seconds > 0 || m.cap_value > 0 || m.cap_quantile > 0;
}
