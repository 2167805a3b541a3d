/**
 * Seeded pseudo-random numbers for Monte Carlo (bandits) and for the simulation tests.
 * Generator: xoshiro128** (Blackman & Vigna, 2018), state filled from the seed with SplitMix32.
 * Normals by Box–Muller, gammas by Marsaglia & Tsang (2000), betas as a ratio of gammas.
 */

export interface Rng {
  /** Uniform on [0, 1) with 53 random bits. */
  uniform(): number;
  /** Standard normal. */
  normal(): number;
  /** Gamma(shape, scale 1), shape > 0. */
  gamma(shape: number): number;
  /** Beta(a, b), a, b > 0. */
  beta(a: number, b: number): number;
}

function rotl(x: number, k: number): number {
  return (x << k) | (x >>> (32 - k));
}

/** A deterministic generator: the same seed gives the same stream on every platform. */
export function createRng(seed: number): Rng {
  // SplitMix32 spreads any integer seed over the 128-bit state (never all zero).
  let sm = seed >>> 0;
  const next32 = () => {
    sm = (sm + 0x9e3779b9) >>> 0;
    let z = sm;
    z = Math.imul(z ^ (z >>> 16), 0x85ebca6b);
    z = Math.imul(z ^ (z >>> 13), 0xc2b2ae35);
    return (z ^ (z >>> 16)) >>> 0;
  };
  let s0 = next32() | 0;
  let s1 = next32() | 0;
  let s2 = next32() | 0;
  let s3 = next32() | 0;
  if ((s0 | s1 | s2 | s3) === 0) s0 = 1;

  const nextUint32 = () => {
    const result = Math.imul(rotl(Math.imul(s1, 5), 7), 9) >>> 0;
    const t = s1 << 9;
    s2 ^= s0;
    s3 ^= s1;
    s1 ^= s2;
    s0 ^= s3;
    s2 ^= t;
    s3 = rotl(s3, 11);
    return result;
  };

  const uniform = () => ((nextUint32() >>> 5) * 67108864 + (nextUint32() >>> 6)) / 9007199254740992;

  let spare: number | null = null;
  const normal = () => {
    if (spare !== null) {
      const z = spare;
      spare = null;
      return z;
    }
    const r = Math.sqrt(-2 * Math.log(1 - uniform())); // 1 − u ∈ (0, 1]
    const angle = 2 * Math.PI * uniform();
    spare = r * Math.sin(angle);
    return r * Math.cos(angle);
  };

  const gamma = (shape: number): number => {
    if (!(shape > 0)) return NaN;
    if (shape < 1) return gamma(shape + 1) * Math.pow(1 - uniform(), 1 / shape);
    const d = shape - 1 / 3;
    const c = 1 / Math.sqrt(9 * d);
    for (;;) {
      const x = normal();
      let v = 1 + c * x;
      if (v <= 0) continue;
      v = v * v * v;
      const u = 1 - uniform();
      if (u < 1 - 0.0331 * x * x * x * x) return d * v;
      if (Math.log(u) < 0.5 * x * x + d * (1 - v + Math.log(v))) return d * v;
    }
  };

  const beta = (a: number, b: number) => {
    const x = gamma(a);
    const y = gamma(b);
    return x / (x + y);
  };

  return { uniform, normal, gamma, beta };
}
