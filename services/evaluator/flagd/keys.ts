/**
 * API keys as flagd selectors. Every OpenFeature flagd provider can set a selector, few can set a
 * header, so by default (VANE_FLAGD_AUTH=key) the flagd ports take a Vane server or client API key
 * as the selector: it is exchanged at identity (AuthService.ExchangeApiKey, rate-limited there)
 * and the principal cached until shortly before its token expires. Refusals are cached briefly,
 * so a provider retrying with a wrong key costs identity one exchange per half minute, not one per
 * call. The key is kept only as a SHA-256 hash.
 */
import { createHash } from "node:crypto";
import { Code, ConnectError } from "@connectrpc/connect";
import { timestampMs } from "@bufbuild/protobuf/wkt";
import { AuthService } from "#gen/vane/identity/v1/auth_service_pb.js";
import type { Principal, TokenVerifier } from "#lib/auth/auth.ts";
import { lazyGrpcClient } from "#lib/clients/grpc-client.ts";
import { unauthenticated, unavailable } from "#lib/process/errors.ts";

/** A selector that is an API key of a kind the flagd ports may take (or may refuse by kind). */
export const API_KEY_SELECTOR = /^vane_(server|client|admin|personal)_[A-Za-z0-9_-]{20,}$/;

export interface FlagdKeys {
  /** The principal of an API key, or UNAUTHENTICATED / UNAVAILABLE saying why not. */
  principal(secret: string): Promise<Principal>;
}

export interface FlagdKeysOptions {
  /** identity's base URL (gRPC). */
  identityUrl: () => string;
  verifier: TokenVerifier;
  /** How long a refused key stays refused without asking identity again (default 30 s). */
  refusalTtlMs?: number;
  /** Most keys remembered (default 10 000). */
  maxEntries?: number;
  now?: () => number;
}

interface Entry {
  until: number;
  principal?: Principal;
  refusal?: ConnectError;
  pending?: Promise<Principal>;
}

export function createFlagdKeys(opts: FlagdKeysOptions): FlagdKeys {
  const now = opts.now ?? Date.now;
  const refusalTtl = opts.refusalTtlMs ?? 30_000;
  const maxEntries = opts.maxEntries ?? 10_000;
  const auth = lazyGrpcClient(AuthService, opts.identityUrl);
  const cache = new Map<string, Entry>();

  const remember = (id: string, entry: Entry) => {
    cache.delete(id);
    cache.set(id, entry);
    if (cache.size > maxEntries) cache.delete(cache.keys().next().value!);
  };

  const exchange = async (id: string, secret: string): Promise<Principal> => {
    try {
      const res = await auth().exchangeApiKey({ apiKey: secret }, { timeoutMs: 5_000 });
      const principal = await opts.verifier.verify(res.accessToken);
      const expires = res.expireTime ? timestampMs(res.expireTime) : now() + 60_000;
      // Exchange again a little before the token would expire (revocations take effect then).
      remember(id, { principal, until: Math.max(now() + 1_000, expires - 30_000) });
      return principal;
    } catch (err) {
      const e = ConnectError.from(err);
      if (e.code === Code.Unauthenticated || e.code === Code.PermissionDenied || e.code === Code.InvalidArgument) {
        const refusal = unauthenticated(
          "the flagd selector is not a valid Vane API key (revoked, expired or mistyped): use a server or client key of the environment",
        );
        remember(id, { refusal, until: now() + refusalTtl });
        throw refusal;
      }
      cache.delete(id);
      if (e.code === Code.ResourceExhausted) throw unavailable("too many API key checks right now; retry shortly");
      throw unavailable(`the API key cannot be checked right now (identity: ${e.rawMessage}); retry shortly`);
    }
  };

  return {
    principal(secret) {
      const id = createHash("sha256").update(secret).digest("base64url");
      const hit = cache.get(id);
      if (hit && (hit.pending || hit.until > now())) {
        if (hit.pending) return hit.pending;
        if (hit.refusal) return Promise.reject(hit.refusal);
        return Promise.resolve(hit.principal!);
      }
      const pending = exchange(id, secret);
      cache.set(id, { until: Infinity, pending });
      return pending;
    },
  };
}
