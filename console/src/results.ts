/**
 * Experiment results in words a product manager reads: percentages, intervals with "—" where no
 * bounded interval exists yet (NaN bounds), and whether a difference is significant and good.
 */
import { Direction, type Interval, type VariantResult } from "#gen/vane/experiments/v1/experiments_pb.js";

/** 0.053 → "+5.3%"; NaN or ±Infinity → "—". */
export function percent(x: number, signed = true): string {
  if (!Number.isFinite(x)) return "—";
  const s = `${(x * 100).toFixed(Math.abs(x) < 0.1 ? 1 : 0)}%`;
  return signed && x > 0 ? `+${s}` : s;
}

/** Whether an interval has two finite bounds (Fieller's interval has none while the control is near 0). */
export const bounded = (i: Interval | undefined): i is Interval => !!i && Number.isFinite(i.lower) && Number.isFinite(i.upper);

/** "[+1.2%, +9.8%]", or "—" without bounds. */
export const interval = (i: Interval | undefined): string => (bounded(i) ? `[${percent(i.lower)}, ${percent(i.upper)}]` : "—");

/** A mean with three decimals; "—" while no unit has data (NaN). */
export const mean = (x: number): string => (Number.isFinite(x) ? x.toFixed(3) : "—");

/** A p-value as people read it: "< 0.001" rather than 1e-7. */
export const pValue = (p: number): string => (!Number.isFinite(p) ? "—" : p < 0.001 ? "< 0.001" : p.toFixed(3));

export type Verdict = { kind: "better" | "worse" | "unclear"; words: string };

/**
 * The verdict for one arm against control: significant when the p-value corrected across the
 * experiment's metrics is below 1 − the confidence level; better or worse by the metric's direction.
 */
export function verdict(v: VariantResult, direction: Direction, confidenceLevel: number): Verdict {
  const alpha = 1 - (confidenceLevel || 0.95);
  if (!(v.adjustedPValue < alpha)) return { kind: "unclear", words: "Not significant yet — keep it running or accept no clear difference" };
  const up = v.absoluteLift > 0;
  const better = direction === Direction.DECREASE ? !up : up;
  return better ? { kind: "better", words: `Significantly better than control` } : { kind: "worse", words: `Significantly worse than control` };
}
