/**
 * Per-credential rate limits: a token bucket per key id, in memory. Each replica limits on its
 * own, so the effective limit scales with replicas; that is the intent (a cap on abuse, not a quota).
 */

/** Options for {@link createRateLimiter}. */
export interface RateLimitOptions {
  /** Sustained events per second per credential. */
  perSecond: number;
  /** Burst capacity. */
  burst: number;
  now?: () => number;
}

/** Takes `n` tokens; returns 0 when allowed, else the seconds to wait before retrying. */
export type RateLimiter = (credential: string, n: number) => number;

/** Creates a limiter. Idle buckets are forgotten, so memory follows active credentials. */
export function createRateLimiter(opts: RateLimitOptions): RateLimiter {
  const now = opts.now ?? Date.now;
  const buckets = new Map<string, { tokens: number; at: number }>();
  let lastSweep = now();
  return (credential, n) => {
    const t = now();
    if (t - lastSweep > 60_000) {
      for (const [k, b] of buckets) if (t - b.at > 60_000) buckets.delete(k);
      lastSweep = t;
    }
    const b = buckets.get(credential) ?? { tokens: opts.burst, at: t };
    b.tokens = Math.min(opts.burst, b.tokens + ((t - b.at) / 1000) * opts.perSecond);
    b.at = t;
    buckets.set(credential, b);
    if (n > opts.burst) return Math.ceil((n - b.tokens) / opts.perSecond);
    if (b.tokens >= n) {
      b.tokens -= n;
      return 0;
    }
    return Math.max(1, Math.ceil((n - b.tokens) / opts.perSecond));
  };
}
