/**
 * The breakdown dimensions an exposure carries. The experiment chooses them at creation; analytics
 * writes them into the experiment's rollout, and the snapshot carries them as the flag's
 * `experimentDimensions` metadata (comma-separated attribute names). So the evaluator sends only
 * what some experiment asked for — never arbitrary context — and needs no other source of truth.
 * Bounded: at most {@link MAX_DIMENSIONS} attributes, primitive values only, as text cut to
 * {@link MAX_DIMENSION_VALUE} characters; a missing or non-primitive attribute is left out
 * (analysis calls that "(none)").
 */
import type { EvaluationContext, MetadataValue } from "#engine";

export const MAX_DIMENSIONS = 3;
export const MAX_DIMENSION_VALUE = 64;

const names = new Map<string, readonly string[]>();

/** The attribute names of a flag's `experimentDimensions` metadata (parsed once per distinct value). */
function namesOf(meta: string): readonly string[] {
  let n = names.get(meta);
  if (n === undefined) {
    n = meta
      .split(",")
      .filter((s) => s !== "")
      .slice(0, MAX_DIMENSIONS);
    if (names.size > 10_000) names.clear(); // a bound, should snapshots churn through many distinct lists
    names.set(meta, n);
  }
  return n;
}

/** The unit's values of the experiment's dimensions, or undefined when the flag names none. */
export function exposureDimensions(metadata: Readonly<Record<string, MetadataValue>>, context: EvaluationContext): Record<string, string> | undefined {
  const meta = metadata.experimentDimensions;
  if (typeof meta !== "string" || meta === "") return undefined;
  const out: Record<string, string> = {};
  for (const name of namesOf(meta)) {
    const v = context[name];
    if (typeof v === "string") out[name] = v.slice(0, MAX_DIMENSION_VALUE);
    else if ((typeof v === "number" && Number.isFinite(v)) || typeof v === "boolean") out[name] = String(v).slice(0, MAX_DIMENSION_VALUE);
  }
  return out;
}
