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

/** A lift on the results' scale: "+5.3%" (relative), or "+0.12" in the metric's units (absolute). */
export function lift(x: number, absolute = false): string {
  if (!absolute) return percent(x);
  if (!Number.isFinite(x)) return "—";
  return `${x > 0 ? "+" : ""}${Number(x.toPrecision(3))}`;
}

/**
 * "[+1.2%, +9.8%]"; a one-sided interval is open on its losing side: "[+1.2%, ∞)"; "—" without
 * bounds (NaN: too little data for any).
 */
export function interval(i: Interval | undefined, absolute = false): string {
  if (!i || Number.isNaN(i.lower) || Number.isNaN(i.upper)) return "—";
  const lo = Number.isFinite(i.lower) ? `[${lift(i.lower, absolute)}` : "(−∞";
  const hi = Number.isFinite(i.upper) ? `${lift(i.upper, absolute)}]` : "∞)";
  return `${lo}, ${hi}`;
}

/** A mean with three decimals; "—" while no unit has data (NaN). */
export const mean = (x: number): string => (Number.isFinite(x) ? x.toFixed(3) : "—");

/** A p-value as people read it: "< 0.001" rather than 1e-7. */
export const pValue = (p: number): string => (!Number.isFinite(p) ? "—" : p < 0.001 ? "< 0.001" : p.toFixed(3));

export type Verdict = { kind: "better" | "worse" | "unclear"; words: string };

/**
 * The verdict for one arm against control, as the server decided it (`significant`: the corrected
 * p-value or the Bayesian decision rule, on the experiment's scale and sides); better or worse by
 * the metric's direction.
 */
export function verdict(v: VariantResult, direction: Direction): Verdict {
  if (!v.significant) return { kind: "unclear", words: "Not significant yet — keep it running or accept no clear difference" };
  const up = v.absoluteLift > 0;
  const better = direction === Direction.DECREASE ? !up : up;
  return better ? { kind: "better", words: `Significantly better than control` } : { kind: "worse", words: `Significantly worse than control` };
}
