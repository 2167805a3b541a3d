/**
 * A deliberately plain MurmurHash3 x86_32 over a byte array, written independently of
 * murmur3.ts so tests can check one against the other (and against flagd-core where it hashes
 * UTF-16 code units instead of UTF-8 bytes). Test support only; not on any hot path.
 */
export function referenceMurmur3(bytes: Uint8Array, seed = 0): number {
  const c1 = 0xcc9e2d51n;
  const c2 = 0x1b873593n;
  const mask = 0xffffffffn;
  const rotl = (x: bigint, r: bigint) => ((x << r) | (x >> (32n - r))) & mask;
  let h = BigInt(seed >>> 0);
  const blocks = Math.floor(bytes.length / 4);
  for (let i = 0; i < blocks; i++) {
    let k = BigInt(bytes[4 * i] | (bytes[4 * i + 1] << 8) | (bytes[4 * i + 2] << 16)) + (BigInt(bytes[4 * i + 3]) << 24n);
    k = (k * c1) & mask;
    k = rotl(k, 15n);
    k = (k * c2) & mask;
    h ^= k;
    h = rotl(h, 13n);
    h = (h * 5n + 0xe6546b64n) & mask;
  }
  let k = 0n;
  const tail = bytes.length & 3;
  const t = blocks * 4;
  if (tail >= 3) k ^= BigInt(bytes[t + 2]) << 16n;
  if (tail >= 2) k ^= BigInt(bytes[t + 1]) << 8n;
  if (tail >= 1) {
    k ^= BigInt(bytes[t]);
    k = (k * c1) & mask;
    k = rotl(k, 15n);
    k = (k * c2) & mask;
    h ^= k;
  }
  h ^= BigInt(bytes.length);
  h ^= h >> 16n;
  h = (h * 0x85ebca6bn) & mask;
  h ^= h >> 13n;
  h = (h * 0xc2b2ae35n) & mask;
  h ^= h >> 16n;
  return Number(h);
}

/** flagd's bucket rule, with BigInt: `(hash × total) >> 32`, then the first cumulative weight above it. */
export function referenceBucket(bucketingValue: string, buckets: readonly [string, number][]): string | null {
  const total = buckets.reduce((s, [, w]) => s + Math.max(0, w), 0);
  if (total === 0) return null;
  const h = BigInt(referenceMurmur3(Buffer.from(bucketingValue, "utf8")));
  const bucket = (h * BigInt(total)) >> 32n;
  let sum = 0n;
  for (const [name, w] of buckets) {
    sum += BigInt(Math.max(0, w));
    if (sum > bucket) return name;
  }
  return null;
}
