/**
 * What a watch stream needs to tell changed evaluations from unchanged ones, cheaply: each
 * evaluation's fingerprint (computed once per shared Evaluation, not once per stream), and which
 * flags of a version must be re-evaluated on every change although their definition did not
 * change (those that read the clock).
 */
import type { Evaluation } from "#gen/vane/evaluation/v1/evaluation_service_pb.js";
import type { JsonValue } from "#engine";
import type { EnvironmentState } from "../snapshots/store.ts";

// The flag set's `version` (in every evaluation's metadata) changes with every commit, so it does
// not make a flag "changed".
const fingerprints = new WeakMap<Evaluation, string>();
function fingerprint(e: Evaluation): string {
  let f = fingerprints.get(e);
  if (f === undefined) {
    const { version: _version, ...metadata } = e.metadata ?? {};
    fingerprints.set(e, (f = JSON.stringify([e.variant, e.reason, e.errorCode, e.value, metadata])));
  }
  return f;
}

/** Whether two evaluations say the same (the flag set version aside). */
export function sameEvaluation(a: Evaluation | undefined, b: Evaluation): boolean {
  return a === b || (a !== undefined && fingerprint(a) === fingerprint(b));
}

const volatile = new WeakMap<EnvironmentState, readonly string[]>();

/**
 * Flags whose targeting reads `$flagd` (the clock: `$flagd.timestamp`), directly or through a
 * shared rule: their result may change with no change to their definition, so each change
 * re-evaluates them, as it re-evaluates the flags it touched.
 */
export function volatileKeys(state: EnvironmentState): readonly string[] {
  let keys = volatile.get(state);
  if (keys === undefined) {
    const def = state.evaluationDefinition;
    const readsClock = (v: JsonValue | undefined) => v !== undefined && JSON.stringify(v).includes('"$flagd');
    const sharedReads = Object.values(def.$evaluators ?? {}).some(readsClock);
    const flags = Array.isArray(def.flags) ? def.flags.map((f) => [f.key ?? "", f] as const) : Object.entries(def.flags);
    keys = flags
      .filter(([, f]) => readsClock(f.targeting) || (sharedReads && f.targeting !== undefined && JSON.stringify(f.targeting).includes('"$ref"')))
      .map(([k]) => k);
    volatile.set(state, keys);
  }
  return keys;
}
