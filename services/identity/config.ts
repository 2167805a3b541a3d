/** Identity's own settings. */
import type { EnvReader } from "#lib/process/config.ts";
import { FAILURE_COST, type ExchangeLimitSettings } from "./exchange-limits.ts";

export interface IdentityConfig {
  keyTokenTtlMs: number;
  userTokenTtlMs: number;
  signingKeyRotateAfterMs: number;
  /** How often each replica reloads the signing keys (a rotation reaches every replica within this). */
  signingKeyRefreshMs: number;
  /** How long a new signing key is published before tokens are signed with it. */
  signingKeyPublishAheadMs: number;
  oidcIssuer: string | undefined;
  oidcAudience: string | undefined;
  /** The public client the console and CLI sign in with (defaults to the audience, its usual value). */
  oidcClientId: string | undefined;
  /** Rate limits of ExchangeApiKey and ExchangeOidcToken. */
  exchangeLimits: ExchangeLimitSettings;
  /** Proxies in front of identity that append the caller to X-Forwarded-For (lib/server/client-address.ts). */
  trustedProxyHops: number;
}

/** Reads identity's settings. */
export function readIdentityConfig(env: EnvReader): IdentityConfig {
  const oidcIssuer = env.url("VANE_OIDC_ISSUER", undefined, ["https", "http"]);
  const oidcAudience = env.optional("VANE_OIDC_AUDIENCE");
  const cfg = {
    // Short because a revoked API key's tokens keep working until they expire (verified locally).
    keyTokenTtlMs: env.durationMs("VANE_KEY_TOKEN_TTL", "5m"),
    userTokenTtlMs: env.durationMs("VANE_USER_TOKEN_TTL", "1h"),
    signingKeyRotateAfterMs: env.durationMs("VANE_SIGNING_KEY_ROTATE_AFTER", "30d"),
    signingKeyRefreshMs: env.durationMs("VANE_SIGNING_KEY_REFRESH", "60s"),
    signingKeyPublishAheadMs: env.durationMs("VANE_SIGNING_KEY_PUBLISH_AHEAD", "2m"),
    oidcIssuer,
    oidcAudience,
    oidcClientId: env.optional("VANE_OIDC_CLIENT_ID") ?? oidcAudience,
    exchangeLimits: {
      windowMs: env.durationMs("VANE_EXCHANGE_WINDOW", "1m"),
      // At least one failure's cost, so a single wrong key never locks its source out.
      sourceBudget: env.int("VANE_EXCHANGE_SOURCE_BUDGET", 600, { min: FAILURE_COST + 1 }),
      keyFailures: env.int("VANE_EXCHANGE_KEY_FAILURES", 20, { min: 1 }),
    },
    trustedProxyHops: env.int("VANE_TRUSTED_PROXY_HOPS", 0, { min: 0, max: 10 }),
  };
  if (oidcIssuer && !oidcAudience) env.string("VANE_OIDC_AUDIENCE"); // records "is required"
  return cfg;
}
