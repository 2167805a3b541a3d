/* eslint-disable @typescript-eslint/no-explicit-any -- compiled closures read arbitrary JSON on the hot path */
/**
 * flagd's `fractional`: bucketing — MurmurHash3 (x86_32, seed 0, UTF-8) of the bucketing value,
 * scaled into [0, totalWeight) with exact integer arithmetic, walked over cumulative weights —
 * and the operator's compiler.
 */
import type { JsonValue } from "../../types.ts";
import type { Node, State, OperatorCall } from "../types.ts";
import { constant, isPlainObject, spread } from "../values.ts";
import { createMurmur3Prefix, murmur3Utf8, murmur3Utf8Continue } from "../../murmur3.ts";

/** flagd caps the sum of weights at Go's MaxInt32. */
export const MAX_TOTAL_WEIGHT = 2147483647;

/**
 * `floor(hash × total / 2^32)` computed exactly: the 64-bit product does not fit a double, so the
 * hash is split in 16-bit halves and every intermediate stays below 2^53.
 */
export function bucketOf(hash: number, total: number): number {
  const hi = hash >>> 16;
  const lo = hash & 0xffff;
  const a = hi * total; // < 2^47
  const b = lo * total; // < 2^47
  return Math.floor((a + Math.floor(b / 65536)) / 65536);
}

/**
 * Picks an entry given the hash of the bucketing value. `entries` alternate variant and weight
 * (`[v0, w0, v1, w1, …]`, weights already validated as non-negative integers); returns null
 * when the total weight is 0.
 */
export function pickBucket(hash: number, entries: readonly unknown[], total: number): unknown {
  if (total === 0) return null;
  const bucket = bucketOf(hash, total);
  let sum = 0;
  for (let i = 0; i < entries.length; i += 2) {
    sum += entries[i + 1] as number;
    if (sum > bucket) return entries[i];
  }
  return null;
}

// --- the operator ---------------------------------------------------------------------------

/**
 * Validates bucket entries `[variant, weight?]…` into a flat `[v0, w0, v1, w1…]` list and its total;
 * null when flagd would reject them (which makes `fractional` return null).
 */
function readBuckets(args: readonly unknown[], start: number): { entries: unknown[]; total: number } | null {
  const entries: unknown[] = [];
  let total = 0;
  for (let i = start; i < args.length; i++) {
    const e = args[i];
    if (!Array.isArray(e) || e.length === 0 || e.length > 2) return null;
    const v = e[0];
    let variant: unknown;
    if (typeof v === "string" || typeof v === "number" || typeof v === "boolean") variant = v;
    else if (v === null || v === undefined) variant = null;
    else return null;
    let weight = 1;
    if (e.length === 2) {
      const w = e[1];
      if (typeof w !== "number" || !Number.isInteger(w)) return null;
      weight = w < 0 ? 0 : w; // negative weights (e.g. from rollout arithmetic) count as 0
    }
    total += weight;
    entries.push(variant, weight);
  }
  if (total > MAX_TOTAL_WEIGHT) return null;
  return { entries, total };
}

export function compileFractional(c: OperatorCall): Node {
  const { raw, path, scope, state, issue, compileNode, compileArgs, argList } = c;
  const prefix = createMurmur3Prefix(state.flagKey);
  const list = argList("fractional", raw);
  /** Hash of the bucketing value: an explicit string, else flag key + targeting key; null when there is none. */
  const hashFor = (first: unknown, d: any): number | null => {
    if (typeof first === "string") return murmur3Utf8(first);
    const tk = d === null || d === undefined ? undefined : d.targetingKey;
    // flagd's evaluator buckets by a string targeting key only: a number or a boolean is no bucketing value.
    if (typeof tk !== "string" || tk === "") return null;
    return murmur3Utf8Continue(prefix, tk);
  };
  /** Where the buckets start: after a string bucketing value, or after a null one (flagd then falls back to the targeting key). */
  const startOf = (first: unknown) => (typeof first === "string" || first === null || first === undefined ? 1 : 0);

  if (list === null) {
    const f = spread(compileNode(raw, path, scope, state));
    return {
      fn: (d) => {
        const args = f(d) as unknown[];
        if (args.length < 1) return null;
        const buckets = readBuckets(args, startOf(args[0]));
        if (buckets === null) return null;
        const h = hashFor(args[0], d);
        return h === null ? null : pickBucket(h, buckets.entries, buckets.total);
      },
      isConst: false,
    };
  }
  if (list.length === 0) return issue("fractional takes at least one bucket: [variant, weight]");
  validateBuckets(list, path, state);
  const nodes = compileArgs(list, path, scope, state);
  const firstLiteral = list[0];
  // Buckets usually are literals: read them once.
  const bucketNodes = typeof firstLiteral === "string" || isPlainObject(firstLiteral) || firstLiteral === null ? nodes.slice(1) : nodes;
  const bucketsConst = bucketNodes.every((n) => n.isConst);
  if (bucketsConst && !isPlainObject(firstLiteral)) {
    const buckets = readBuckets(
      bucketNodes.map((n) => n.value),
      0,
    );
    if (buckets === null) return constant(null);
    const { entries, total } = buckets;
    if (typeof firstLiteral === "string") {
      const h = murmur3Utf8(firstLiteral);
      return constant(pickBucket(h, entries, total));
    }
    return {
      fn: (d) => {
        const tk = d === null || d === undefined ? undefined : d.targetingKey;
        if (typeof tk !== "string" || tk === "") return null;
        return pickBucket(murmur3Utf8Continue(prefix, tk), entries, total);
      },
      isConst: false,
    };
  }
  const fns = nodes.map((n) => n.fn);
  return {
    fn: (d) => {
      const args = fns.map((f) => f(d));
      const buckets = readBuckets(args, startOf(args[0]));
      if (buckets === null) return null;
      const h = hashFor(args[0], d);
      return h === null ? null : pickBucket(h, buckets.entries, buckets.total);
    },
    isConst: false,
  };
}

function validateBuckets(list: JsonValue[], path: string, state: State): void {
  let total = 0;
  let allLiteral = true;
  list.forEach((e, i) => {
    if (i === 0 && (typeof e === "string" || isPlainObject(e) || e === null)) return;
    const at = `${path}[${i}]`;
    if (isPlainObject(e)) {
      allLiteral = false;
      return;
    }
    if (!Array.isArray(e) || e.length === 0 || e.length > 2) {
      state.issues.push({ path: at, message: "a fractional bucket is [variant, weight?]", atEvaluation: true });
      return;
    }
    const v = e[0];
    if (!isPlainObject(v) && v !== null && typeof v !== "string" && typeof v !== "number" && typeof v !== "boolean") {
      state.issues.push({ path: `${at}[0]`, message: "a fractional variant must be a string, number, boolean or null", atEvaluation: true });
    }
    if (e.length === 2) {
      const w = e[1];
      if (isPlainObject(w)) allLiteral = false;
      else if (typeof w !== "number" || !Number.isInteger(w)) {
        state.issues.push({ path: `${at}[1]`, message: "a fractional weight must be an integer", atEvaluation: true });
      } else total += Math.max(0, w);
    } else total += 1;
  });
  if (allLiteral && total > MAX_TOTAL_WEIGHT) {
    state.issues.push({ path, message: `fractional weights sum to ${total}, above the maximum ${MAX_TOTAL_WEIGHT}`, atEvaluation: true });
  }
}
