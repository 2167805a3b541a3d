/**
 * Console login through any OpenID Connect provider: the ID token is verified against the
 * provider's JWKS, found through its discovery document.
 */
import { createRemoteJWKSet, type JWTPayload, type JWTVerifyGetKey, jwtVerify } from "jose";
import { unauthenticated, unavailable } from "#lib/process/errors.ts";

/** Options for {@link createOidcVerifier}. */
export interface OidcOptions {
  issuer: string;
  /** The client id Vane is registered under at the provider. */
  audience: string;
}

/** A verified person: who the provider says they are. */
export interface OidcIdentity {
  issuer: string;
  subject: string;
  email: string;
  /**
   * The provider vouches that the person controls `email` (claim `email_verified` is exactly
   * `true`; a missing claim or a string does not count). Only then may a first login claim an
   * account by its email.
   */
  emailVerified: boolean;
}

/** Creates a verifier for ID tokens from one provider. */
export function createOidcVerifier(opts: OidcOptions) {
  let keys: JWTVerifyGetKey | undefined;
  async function discover(): Promise<JWTVerifyGetKey> {
    if (keys) return keys;
    const url = `${opts.issuer.replace(/\/$/, "")}/.well-known/openid-configuration`;
    let doc: { jwks_uri?: unknown; issuer?: unknown };
    try {
      const res = await fetch(url, { signal: AbortSignal.timeout(5000) });
      if (!res.ok) throw new Error(`HTTP ${res.status}`);
      doc = (await res.json()) as typeof doc;
    } catch (err) {
      throw unavailable(`the OpenID Connect provider could not be reached (${(err as Error).message}); try again`);
    }
    if (typeof doc.jwks_uri !== "string") throw unavailable("the OpenID Connect provider's discovery document has no jwks_uri");
    keys = createRemoteJWKSet(new URL(doc.jwks_uri), { cooldownDuration: 30_000 });
    return keys;
  }
  return {
    async verify(idToken: string): Promise<OidcIdentity> {
      const jwks = await discover();
      let payload: JWTPayload & { email?: unknown; email_verified?: unknown };
      try {
        ({ payload } = await jwtVerify(idToken, jwks, {
          issuer: opts.issuer,
          audience: opts.audience,
          algorithms: ["RS256", "ES256", "PS256", "EdDSA", "RS384", "ES384", "RS512"],
          requiredClaims: ["sub", "exp"],
        }));
      } catch {
        throw unauthenticated("the ID token is invalid, expired, or not meant for Vane");
      }
      if (typeof payload.email !== "string") {
        throw unauthenticated("the ID token has no email; allow the email scope at the provider");
      }
      return { issuer: opts.issuer, subject: payload.sub as string, email: payload.email.toLowerCase(), emailVerified: payload.email_verified === true };
    },
  };
}

export type OidcVerifier = ReturnType<typeof createOidcVerifier>;
