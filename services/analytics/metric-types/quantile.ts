/**
 * A quantile of per-event values whose events are clustered by unit (Deng, Knoblich & Lu 2018,
 * "Applying the delta method in metric analytics", §4.2). The sample quantile ξ̂ of the events is
 * inverted from the share of events at or below it, F̂(ξ) = Σ_i a_i / Σ_i b_i (a_i: the unit's
 * events ≤ ξ, b_i: all its events): a ratio of per-unit sums, whose variance the delta method
 * gives without assuming a unit's events independent. Woodruff's interval takes the quantiles at
 * q ± z·se(F̂) and turns its width into the quantile's standard error, se(ξ̂) = (U − L) / 2z,
 * needing no density estimate. Differences between arms then go through the usual comparison
 * with these standard errors.
 */
import { normalQuantile, ratioEstimate, type Estimate, type RatioSums } from "../stats/index.ts";

/** One arm's events of a quantile metric (results read them from SQL into an arraySource). */
export interface QuantileSource {
  /** Units with at least one event, and events. */
  size(): Promise<{ units: number; events: number }>;
  /** The p-quantile of the values (the smallest value with at least a share p of events at or below it). */
  quantile(p: number): Promise<number>;
  /** Over the units with events: a = the unit's events with value ≤ x (numerator), b = its events. */
  belowSums(x: number): Promise<RatioSums>;
}

const Z = normalQuantile(0.975);

/** The arm's q-quantile as an Estimate: n units with events, mean ξ̂, variance se(ξ̂)². */
export async function quantileEstimate(source: QuantileSource, q: number): Promise<Estimate> {
  const { units } = await source.size();
  if (units < 2) return { n: units, mean: units ? await source.quantile(q) : NaN, variance: NaN };
  const xi = await source.quantile(q);
  const se = Math.sqrt(ratioEstimate(await source.belowSums(xi)).variance);
  const lower = await source.quantile(Math.max(0, q - Z * se));
  const upper = await source.quantile(Math.min(1, q + Z * se));
  return { n: units, mean: xi, variance: ((upper - lower) / (2 * Z)) ** 2 };
}

/** A QuantileSource over in-memory events (unit index, value). */
export function arraySource(events: readonly { unit: number; value: number }[]): QuantileSource {
  const sorted = [...events].sort((a, b) => a.value - b.value);
  const units = new Map<number, number>();
  for (const e of events) units.set(e.unit, (units.get(e.unit) ?? 0) + 1);
  return {
    size: async () => ({ units: units.size, events: events.length }),
    quantile: async (p) => sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil(p * sorted.length) - 1))].value,
    belowSums: async (x) => {
      const below = new Map<number, number>();
      for (const e of events) if (e.value <= x) below.set(e.unit, (below.get(e.unit) ?? 0) + 1);
      const s: RatioSums = { n: units.size, numerator: { sum: 0, sumSquares: 0 }, denominator: { sum: 0, sumSquares: 0 }, sumProduct: 0 };
      for (const [unit, b] of units) {
        const a = below.get(unit) ?? 0;
        s.numerator.sum += a;
        s.numerator.sumSquares += a * a;
        s.denominator.sum += b;
        s.denominator.sumSquares += b * b;
        s.sumProduct += a * b;
      }
      return s;
    },
  };
}
