/**
 * Tokens for tests of services other than identity: a throwaway ES256 key, a signer, and a
 * verifier over its public JWKS — the same verification code services run. Test code only.
 */
import { createLocalJWKSet, exportJWK, generateKeyPair, SignJWT } from "jose";
import { createTokenVerifier, TOKEN_ALGORITHM, TOKEN_AUDIENCE, type TokenVerifier, type VaneClaims } from "#lib/auth/auth.ts";

/** A signer and the matching verifier. */
export interface TestTokens {
  issuer: string;
  verifier: TokenVerifier;
  sign(claims: VaneClaims, ttlSeconds?: number): Promise<string>;
}

/** Creates a key pair and returns helpers to sign and verify tokens with it. */
export async function createTestTokens(issuer = "vane"): Promise<TestTokens> {
  const { privateKey, publicKey } = await generateKeyPair(TOKEN_ALGORITHM);
  const jwk = { ...(await exportJWK(publicKey)), kid: "test", alg: TOKEN_ALGORITHM };
  return {
    issuer,
    verifier: createTokenVerifier({ issuer, keys: createLocalJWKSet({ keys: [jwk] }) }),
    sign: (claims, ttlSeconds = 300) =>
      new SignJWT(claims)
        .setProtectedHeader({ alg: TOKEN_ALGORITHM, kid: "test" })
        .setIssuer(issuer)
        .setAudience(TOKEN_AUDIENCE)
        .setIssuedAt()
        .setExpirationTime(Math.floor(Date.now() / 1000) + ttlSeconds)
        .sign(privateKey),
  };
}
