/**
 * Limits of breakdown dimensions, shared by the API (an experiment's choice) and the pipeline
 * (what an exposure carries). The contract states the same rules; the pipeline re-applies them
 * because the bus is not an edge that validated its messages.
 */
import { invalidArgument } from "#lib/process/errors.ts";

export const MAX_BREAKDOWN_DIMENSIONS = 3;
export const MAX_DIMENSION_VALUE = 64;
/** A context attribute name (the contract's pattern). */
export const DIMENSION_NAME = /^[A-Za-z_][A-Za-z0-9_.-]{0,63}$/;

/**
 * An experiment's choice, beyond the contract's rules (count, pattern, unique): the targeting key
 * is the unit itself — one segment per unit — so it is no dimension.
 */
export function checkBreakdownDimensions(names: readonly string[]): void {
  if (names.length > MAX_BREAKDOWN_DIMENSIONS)
    throw invalidArgument(`breakdown_dimensions: at most ${MAX_BREAKDOWN_DIMENSIONS} dimensions, got ${names.length}`);
  for (const n of names) {
    if (!DIMENSION_NAME.test(n))
      throw invalidArgument(`breakdown_dimensions: "${n}" is not a context attribute name (a letter or _, then letters, digits, _ . -; at most 64)`);
    if (n === "targetingKey")
      throw invalidArgument('breakdown_dimensions: "targetingKey" is the unit itself (one segment per unit); choose an attribute many units share');
  }
}

/** An exposure's dimension values within the limits: valid names only, at most 3, values cut. */
export function boundedDimensions(d: Readonly<Record<string, string>>): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [k, v] of Object.entries(d)) {
    if (Object.keys(out).length >= MAX_BREAKDOWN_DIMENSIONS) break;
    if (DIMENSION_NAME.test(k)) out[k] = v.slice(0, MAX_DIMENSION_VALUE);
  }
  return out;
}
