/** The metric types' options of `vane metrics create`, and how a metric's settings print. */
import { Aggregation, type Metric } from "#gen/vane/experiments/v1/experiments_pb.js";
import { UsageError } from "../errors.ts";
import { enumName } from "../shapes.ts";

export interface MetricSettingOptions {
  denominator?: string;
  numeratorAggregation?: string;
  denominatorAggregation?: string;
  quantile?: string;
  window?: string;
  retention?: string;
  cap?: string;
  capQuantile?: string;
}

const UNIT_SECONDS: Record<string, number> = { s: 1, m: 60, h: 3600, d: 86_400 };

function number(option: string, text: string | undefined): number {
  if (text === undefined) return 0;
  const n = Number(text);
  if (!Number.isFinite(n)) throw new UsageError(`--${option} must be a number, got "${text}"`);
  return n;
}

/** "24h" → 86400; 30m, 7d, 90s. */
export function parseWindow(text: string): number {
  const m = /^(\d+)([smhd])$/.exec(text.trim());
  if (!m) throw new UsageError(`--window must be a duration like 30m, 24h or 7d, got "${text}"`);
  return Number(m[1]) * UNIT_SECONDS[m[2]];
}

/** "7-14" → days 7 (inclusive) to 14 (exclusive). */
export function parseRetention(text: string): { retentionStartDays: number; retentionEndDays: number } {
  const m = /^(\d+)-(\d+)$/.exec(text.trim());
  if (!m) throw new UsageError(`--retention must be START-END in days after exposure, like 7-14, got "${text}"`);
  return { retentionStartDays: Number(m[1]), retentionEndDays: Number(m[2]) };
}

/** The CreateMetricRequest fields of the options (the server checks which go with the kind). */
export function metricSettingsRequest(o: MetricSettingOptions) {
  const aggregation = (a: string | undefined) => (a ? Aggregation[a.toUpperCase() as keyof typeof Aggregation] : Aggregation.UNSPECIFIED);
  return {
    denominatorEventName: o.denominator ?? "",
    numeratorAggregation: aggregation(o.numeratorAggregation),
    denominatorAggregation: aggregation(o.denominatorAggregation),
    quantile: number("quantile", o.quantile),
    windowSeconds: o.window ? parseWindow(o.window) : 0,
    ...(o.retention ? parseRetention(o.retention) : {}),
    capValue: number("cap", o.cap),
    capQuantile: number("cap-quantile", o.capQuantile),
  };
}

/** The settings a metric has beyond its kind (none for a plain metric). */
export function metricSettingsOf(m: Metric): Record<string, string | number> {
  const out: Record<string, string | number> = {};
  if (m.denominatorEventName) out.denominator = m.denominatorEventName;
  if (m.numeratorAggregation) out.numeratorAggregation = enumName(Aggregation, m.numeratorAggregation);
  if (m.denominatorAggregation) out.denominatorAggregation = enumName(Aggregation, m.denominatorAggregation);
  if (m.quantile) out.quantile = m.quantile;
  if (m.windowSeconds) out.windowSeconds = m.windowSeconds;
  if (m.retentionEndDays) out.retentionDays = `${m.retentionStartDays}-${m.retentionEndDays}`;
  if (m.capValue) out.cap = m.capValue;
  if (m.capQuantile) out.capQuantile = m.capQuantile;
  return out;
}
