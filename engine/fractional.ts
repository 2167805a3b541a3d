/**
 * flagd's `fractional` bucketing: MurmurHash3 (x86_32, seed 0, UTF-8) of the bucketing value,
 * scaled into [0, totalWeight) with exact integer arithmetic, walked over cumulative weights.
 */

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
