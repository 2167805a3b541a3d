/**
 * MurmurHash3 x86 32-bit over the UTF-8 encoding of a JS string, without allocating.
 *
 * JS ports that hash `charCodeAt` values disagree with flagd (Go hashes the UTF-8 bytes) on any
 * non-ASCII key, so this one encodes code points to UTF-8 on the fly. Lone surrogates encode as
 * U+FFFD, like `TextEncoder` and Go's `encoding/json`.
 */

const C1 = 0xcc9e2d51;
const C2 = 0x1b873593;

/** Hashing state after a prefix; lets a flag pre-hash its key once and bucket `flagKey + targetingKey` without concatenating. */
export interface Murmur3State {
  readonly h: number;
  /** Pending bytes of the current 4-byte block, little-endian. */
  readonly k: number;
  /** Number of pending bytes (0..3). */
  readonly n: number;
  /** Total bytes hashed so far. */
  readonly len: number;
}

// Scratch state shared by the hot loop: hashing is synchronous, so a module-level state is safe
// and spares an object per call.
let sh = 0;
let sk = 0;
let sn = 0;
let slen = 0;

function pushByte(b: number): void {
  sk |= b << (sn << 3);
  if (++sn === 4) {
    let k = Math.imul(sk, C1);
    k = (k << 15) | (k >>> 17);
    k = Math.imul(k, C2);
    let h = sh ^ k;
    h = (h << 13) | (h >>> 19);
    sh = (Math.imul(h, 5) + 0xe6546b64) | 0;
    sk = 0;
    sn = 0;
  }
}

function feed(s: string): void {
  const len = s.length;
  for (let i = 0; i < len; i++) {
    let c = s.charCodeAt(i);
    if (c < 0x80) {
      pushByte(c);
      slen += 1;
      continue;
    }
    if (c < 0x800) {
      pushByte(0xc0 | (c >> 6));
      pushByte(0x80 | (c & 0x3f));
      slen += 2;
      continue;
    }
    if (c >= 0xd800 && c <= 0xdfff) {
      const next = i + 1 < len ? s.charCodeAt(i + 1) : 0;
      if (c <= 0xdbff && next >= 0xdc00 && next <= 0xdfff) {
        c = 0x10000 + ((c - 0xd800) << 10) + (next - 0xdc00);
        i++;
        pushByte(0xf0 | (c >> 18));
        pushByte(0x80 | ((c >> 12) & 0x3f));
        pushByte(0x80 | ((c >> 6) & 0x3f));
        pushByte(0x80 | (c & 0x3f));
        slen += 4;
        continue;
      }
      c = 0xfffd; // lone surrogate
    }
    pushByte(0xe0 | (c >> 12));
    pushByte(0x80 | ((c >> 6) & 0x3f));
    pushByte(0x80 | (c & 0x3f));
    slen += 3;
  }
}

function finish(): number {
  let h = sh;
  if (sn > 0) {
    let k = Math.imul(sk, C1);
    k = (k << 15) | (k >>> 17);
    k = Math.imul(k, C2);
    h ^= k;
  }
  h ^= slen;
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  h ^= h >>> 16;
  return h >>> 0;
}

/** MurmurHash3 x86_32 of the UTF-8 bytes of `s`, as an unsigned 32-bit integer. */
export function murmur3Utf8(s: string, seed = 0): number {
  sh = seed | 0;
  sk = 0;
  sn = 0;
  slen = 0;
  feed(s);
  return finish();
}

/** Hashing state after the UTF-8 bytes of `prefix` (seed 0). */
export function createMurmur3Prefix(prefix: string, seed = 0): Murmur3State {
  sh = seed | 0;
  sk = 0;
  sn = 0;
  slen = 0;
  feed(prefix);
  return Object.freeze({ h: sh, k: sk, n: sn, len: slen });
}

/** Hash of `prefix + s`, given the state returned by {@link createMurmur3Prefix} for `prefix`. */
export function murmur3Utf8Continue(state: Murmur3State, s: string): number {
  sh = state.h;
  sk = state.k;
  sn = state.n;
  slen = state.len;
  feed(s);
  return finish();
}
