/**
 * Holdout exposures. A flag held out by a holdout starts with the holdout's rule — the slice
 * [0, buckets) of the layer `holdout:<id>`, serving the default — and the snapshot names it in
 * the flag's metadata (`holdoutId`, `holdoutBuckets`). Every evaluation of such a flag for a unit
 * with a targeting key is an exposure of the holdout: arm "holdout" when the unit's bucket is in
 * the slice, "general" otherwise. The bucket is computed here exactly as the engine's
 * `fractional` computes the rule's (MurmurHash3 of `layer:holdout:<id>/<targeting key>`, scaled
 * to 10,000), so the exposure's arm is the arm the unit was served.
 */
import { bucketOf, murmur3Utf8, type EvaluationContext, type MetadataValue } from "#engine";

/** Buckets of a layer (LayerCondition's range). */
const LAYER_BUCKETS = 10_000;

/** The holdout arm of the unit for a flag, or undefined when the flag is in no holdout (or the unit has no key). */
export function holdoutExposure(
  metadata: Readonly<Record<string, MetadataValue>>,
  context: EvaluationContext,
): { holdoutId: string; arm: "holdout" | "general"; unitKey: string } | undefined {
  const id = metadata.holdoutId;
  const buckets = metadata.holdoutBuckets;
  const unitKey = context.targetingKey;
  if (typeof id !== "string" || typeof buckets !== "number" || typeof unitKey !== "string" || unitKey === "") return undefined;
  return { holdoutId: id, arm: isHeldOut(id, buckets, unitKey) ? "holdout" : "general", unitKey };
}

/** Whether the unit is in the holdout's slice. */
export function isHeldOut(holdoutId: string, buckets: number, unitKey: string): boolean {
  return bucketOf(murmur3Utf8(`layer:holdout:${holdoutId}/${unitKey}`), LAYER_BUCKETS) < buckets;
}
