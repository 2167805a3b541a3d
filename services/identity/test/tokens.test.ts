import { Code, ConnectError } from "@connectrpc/connect";
import { exportJWK, generateKeyPair, SignJWT, UnsecuredJWT } from "jose";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { AuthService } from "#gen/vane/identity/v1/auth_service_pb.js";
import { ApiKeyKind } from "#gen/vane/identity/v1/identity_pb.js";
import { IdentityService } from "#gen/vane/identity/v1/identity_service_pb.js";
import { type IdentityHarness, startIdentity, type Tenant } from "./harness.ts";

const codeOf = (p: Promise<unknown>) =>
  p.then(
    () => "OK",
    (err: unknown) => Code[ConnectError.from(err).code],
  );

describe("tokens", () => {
  let h: IdentityHarness;
  let t: Tenant;
  beforeAll(async () => {
    h = await startIdentity();
    t = await h.seedTenant();
  });
  afterAll(() => h?.close());

  const whoAmI = (token?: string) => h.client(AuthService, token).whoAmI({});
  const claims = () => ({ sub: t.ownerUserId, org: t.orgId, role: "owner", kind: "user" });
  const kid = () => h.module.keys.jwks().keys[0].kid!;

  it("accepts a valid token and describes the caller", async () => {
    const { principal } = await whoAmI(t.ownerToken);
    expect(principal).toMatchObject({ subject: t.ownerUserId, organizationId: t.orgId });
  });

  it("rejects a missing or malformed Authorization header", async () => {
    expect(await codeOf(whoAmI())).toBe("Unauthenticated");
    expect(await codeOf(whoAmI("not.a.jwt"))).toBe("Unauthenticated");
  });

  it("rejects a token forged with another key under a known kid", async () => {
    const { privateKey } = await generateKeyPair("ES256");
    const forged = await new SignJWT(claims())
      .setProtectedHeader({ alg: "ES256", kid: kid() })
      .setIssuer("vane")
      .setAudience("vane")
      .setIssuedAt()
      .setExpirationTime("5m")
      .sign(privateKey);
    expect(await codeOf(whoAmI(forged))).toBe("Unauthenticated");
  });

  it("rejects expired tokens", async () => {
    const expired = await h.sign(claims(), -60_000);
    expect(await codeOf(whoAmI(expired))).toBe("Unauthenticated");
  });

  it("rejects a wrong audience or issuer", async () => {
    const { privateKey, publicKey } = await generateKeyPair("ES256", { extractable: true });
    // Sign with the real key by way of the key ring, then tamper: any change breaks the signature.
    const good = await h.sign(claims());
    const [header, , sig] = good.split(".");
    const payload = Buffer.from(JSON.stringify({ ...claims(), aud: "someone-else", iss: "vane", exp: Math.floor(Date.now() / 1000) + 60 })).toString(
      "base64url",
    );
    expect(await codeOf(whoAmI(`${header}.${payload}.${sig}`))).toBe("Unauthenticated");
    // A correctly signed token for another audience, from a key that is in the JWKS, must also fail:
    const otherIssuer = await startIdentity({ VANE_TOKEN_ISSUER: "not-vane" });
    try {
      const foreign = await otherIssuer.sign(claims());
      expect(await codeOf(whoAmI(foreign))).toBe("Unauthenticated");
    } finally {
      await otherIssuer.close();
    }
    expect(await exportJWK(publicKey)).toBeTruthy();
    void privateKey;
  });

  it("rejects alg none and HMAC signed with the public key", async () => {
    const none = new UnsecuredJWT(claims()).setIssuer("vane").setAudience("vane").setIssuedAt().setExpirationTime("5m").encode();
    expect(await codeOf(whoAmI(none))).toBe("Unauthenticated");
    const jwk = h.module.keys.jwks().keys[0];
    const hmac = await new SignJWT(claims())
      .setProtectedHeader({ alg: "HS256", kid: jwk.kid })
      .setIssuer("vane")
      .setAudience("vane")
      .setIssuedAt()
      .setExpirationTime("5m")
      .sign(new TextEncoder().encode(JSON.stringify(jwk)));
    expect(await codeOf(whoAmI(hmac))).toBe("Unauthenticated");
  });

  it("refuses revoked keys and keys of deleted environments", async () => {
    const owner = h.client(IdentityService, t.ownerToken);
    const auth = h.client(AuthService);
    const { apiKey, secret } = await owner.createApiKey({ environmentId: t.environmentId, kind: ApiKeyKind.CLIENT, name: "web" });
    const issued = await auth.exchangeApiKey({ apiKey: secret });
    // Key tokens live 5 minutes by default (VANE_KEY_TOKEN_TTL)...
    const lifetimeSec = Number(issued.expireTime!.seconds) - Date.now() / 1000;
    expect(lifetimeSec).toBeGreaterThan(290);
    expect(lifetimeSec).toBeLessThanOrEqual(300);
    await owner.revokeApiKey({ id: apiKey!.id });
    expect(await codeOf(auth.exchangeApiKey({ apiKey: secret }))).toBe("Unauthenticated");
    // ...and, verified locally everywhere, a token issued before the revocation works until then.
    expect(await codeOf(whoAmI(issued.accessToken))).toBe("OK");
    expect(await codeOf(auth.exchangeApiKey({ apiKey: `${secret}x` }))).toBe("Unauthenticated");

    const { environment } = await owner.createEnvironment({ projectId: t.projectId, key: `tmp-${Date.now()}`, name: "tmp" });
    const k2 = await owner.createApiKey({ environmentId: environment!.id, kind: ApiKeyKind.SERVER, name: "tmp" });
    await owner.deleteEnvironment({ id: environment!.id });
    expect(await codeOf(auth.exchangeApiKey({ apiKey: k2.secret }))).toBe("Unauthenticated");
  });

  it("keeps server and client keys out of the management API", async () => {
    const owner = h.client(IdentityService, t.ownerToken);
    const auth = h.client(AuthService);
    for (const kind of [ApiKeyKind.SERVER, ApiKeyKind.CLIENT]) {
      const { secret } = await owner.createApiKey({ environmentId: t.environmentId, kind, name: "k" });
      const token = (await auth.exchangeApiKey({ apiKey: secret })).accessToken;
      expect(await codeOf(h.client(IdentityService, token).getProject({ id: t.projectId }))).toBe("PermissionDenied");
    }
  });

  it("publishes a new signing key ahead of signing with it, without invalidating tokens already issued", async () => {
    const before = await h.sign(claims());
    const oldKid = h.module.keys.activeKid()!;
    const newKid = await h.module.keys.rotate();
    expect(newKid).not.toBe(oldKid);
    const kids = h.module.keys.jwks().keys.map((k) => k.kid);
    expect(kids).toEqual(expect.arrayContaining([oldKid, newKid]));
    expect(await codeOf(whoAmI(before))).toBe("OK");
    // VANE_SIGNING_KEY_PUBLISH_AHEAD (2 min here) must pass before the new key signs; see signing-keys.test.ts.
    const after = await h.sign(claims());
    expect(JSON.parse(Buffer.from(after.split(".")[0], "base64url").toString()).kid).toBe(oldKid);
    expect(await codeOf(whoAmI(after))).toBe("OK");
    const res = await fetch(`${h.baseUrl}/.well-known/jwks.json`);
    const jwks = (await res.json()) as { keys: Array<{ kid: string; d?: string }> };
    expect(jwks.keys.map((k) => k.kid)).toEqual(expect.arrayContaining([oldKid, newKid]));
    expect(jwks.keys.every((k) => k.d === undefined)).toBe(true);
  });
});
