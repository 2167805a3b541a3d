/**
 * A verifier that remembers tokens it has verified until they expire. Evaluation is called at
 * high rates with the same few tokens (one per SDK instance), and an ES256 verification costs
 * more than the evaluation itself; a verified token stays valid until its `exp` anyway.
 */
import { decodeJwt } from "jose";
import type { Principal, TokenVerifier } from "#lib/auth/auth.ts";

/** Options for {@link createCachingVerifier}. */
export interface CachingVerifierOptions {
  /** Most tokens remembered (default 10 000; the oldest are forgotten first). */
  maxEntries?: number;
  /** Longest a verification is trusted, whatever the token's `exp` (default 5 min). */
  maxAgeMs?: number;
  now?: () => number;
}

/** Wraps `inner` with a cache of successful verifications. Failures are never cached. */
export function createCachingVerifier(inner: TokenVerifier, opts: CachingVerifierOptions = {}): TokenVerifier {
  const max = opts.maxEntries ?? 10_000;
  const maxAge = opts.maxAgeMs ?? 5 * 60_000;
  const now = opts.now ?? Date.now;
  const cache = new Map<string, { principal: Principal; until: number }>();
  return {
    async verify(token) {
      const hit = cache.get(token);
      if (hit && hit.until > now()) return hit.principal;
      if (hit) cache.delete(token);
      const principal = await inner.verify(token);
      const exp = decodeJwt(token).exp;
      const until = Math.min(now() + maxAge, typeof exp === "number" ? exp * 1000 : 0);
      if (until > now()) {
        cache.set(token, { principal, until });
        if (cache.size > max) cache.delete(cache.keys().next().value!);
      }
      return principal;
    },
  };
}
