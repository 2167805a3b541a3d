/**
 * Console login through OpenID Connect, against a stand-in provider (the outside world): a
 * loopback HTTP server publishing a discovery document and a JWKS, signing ID tokens.
 */
import * as http from "node:http";
import type { AddressInfo } from "node:net";
import { Code, ConnectError } from "@connectrpc/connect";
import { exportJWK, generateKeyPair, SignJWT } from "jose";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { AuthService } from "#gen/vane/identity/v1/auth_service_pb.js";
import { Role } from "#gen/vane/identity/v1/identity_pb.js";
import { IdentityService } from "#gen/vane/identity/v1/identity_service_pb.js";
import { type IdentityHarness, startIdentity, type Tenant } from "./harness.ts";

const codeOf = (p: Promise<unknown>) =>
  p.then(
    () => "OK",
    (err: unknown) => Code[ConnectError.from(err).code],
  );

describe("OpenID Connect login", () => {
  let provider: http.Server;
  let issuer: string;
  let sign: (claims: Record<string, unknown>, opts?: { aud?: string; iss?: string; exp?: string }) => Promise<string>;
  let h: IdentityHarness;
  let t: Tenant;

  beforeAll(async () => {
    const { privateKey, publicKey } = await generateKeyPair("RS256");
    const jwk = { ...(await exportJWK(publicKey)), kid: "p1", alg: "RS256", use: "sig" };
    provider = http.createServer((req, res) => {
      res.setHeader("content-type", "application/json");
      if (req.url === "/.well-known/openid-configuration") res.end(JSON.stringify({ issuer, jwks_uri: `${issuer}/jwks` }));
      else if (req.url === "/jwks") res.end(JSON.stringify({ keys: [jwk] }));
      else res.writeHead(404).end("{}");
    });
    await new Promise<void>((r) => provider.listen(0, "127.0.0.1", r));
    issuer = `http://127.0.0.1:${(provider.address() as AddressInfo).port}`;
    sign = (claims, o = {}) =>
      new SignJWT(claims)
        .setProtectedHeader({ alg: "RS256", kid: "p1" })
        .setIssuer(o.iss ?? issuer)
        .setAudience(o.aud ?? "vane-console")
        .setIssuedAt()
        .setExpirationTime(o.exp ?? "5m")
        .sign(privateKey);
    h = await startIdentity({ VANE_OIDC_ISSUER: issuer, VANE_OIDC_AUDIENCE: "vane-console" });
    t = await h.seedTenant();
  });
  afterAll(async () => {
    await h?.close();
    provider?.close();
  });

  it("tells clients the provider and the public client id without a credential", async () => {
    const options = await h.client(AuthService).getSignInOptions({});
    expect(options).toMatchObject({ oidcIssuer: issuer, oidcClientId: "vane-console" });
    expect(options.oidcScopes).toEqual(expect.arrayContaining(["openid", "email"]));
  });

  it("signs in a member invited by email and scopes the session to their organization", async () => {
    const owner = h.client(IdentityService, t.ownerToken);
    await owner.addMember({ organizationId: t.orgId, email: "dana@example.test", role: Role.EDITOR });
    const idToken = await sign({ sub: "provider-user-1", email: "Dana@Example.test", email_verified: true });
    const res = await h.client(AuthService).exchangeOidcToken({ idToken });
    expect(res.principal).toMatchObject({ organizationId: t.orgId, role: Role.EDITOR });
    const session = h.client(IdentityService, res.accessToken);
    expect((await session.listProjects({ organizationId: t.orgId })).projects.map((p) => p.id)).toContain(t.projectId);
    // Same provider identity again: the same Vane user, found by subject (no email check needed).
    const again = await h.client(AuthService).exchangeOidcToken({ idToken: await sign({ sub: "provider-user-1", email: "dana@example.test" }) });
    expect(again.principal?.subject).toBe(res.principal?.subject);
  });

  it("links an invited account only when the provider verified the email", async () => {
    const owner = h.client(IdentityService, t.ownerToken);
    await owner.addMember({ organizationId: t.orgId, email: "erin@example.test", role: Role.ADMIN });
    const auth = h.client(AuthService);
    // Someone who signed up at the provider with Erin's address but never proved it.
    for (const claims of [{}, { email_verified: false }, { email_verified: "true" }]) {
      const idToken = await sign({ sub: "impostor", email: "erin@example.test", ...claims });
      expect(await codeOf(auth.exchangeOidcToken({ idToken }))).toBe("Unauthenticated");
    }
    // The account stayed unlinked: Erin, verified, still gets it.
    const erin = await auth.exchangeOidcToken({ idToken: await sign({ sub: "erin", email: "erin@example.test", email_verified: true }) });
    expect(erin.principal).toMatchObject({ organizationId: t.orgId, role: Role.ADMIN });
    expect(await codeOf(auth.exchangeOidcToken({ idToken: await sign({ sub: "impostor", email: "erin@example.test", email_verified: true }) }))).toBe(
      "Unauthenticated",
    );
  });

  it("creates no account for an unverified email, so a later invitation cannot reach an impostor", async () => {
    const auth = h.client(AuthService);
    const idToken = await sign({ sub: "early-bird", email: "frank@example.test" });
    expect(await codeOf(auth.exchangeOidcToken({ idToken }))).toBe("Unauthenticated");
    await h.client(IdentityService, t.ownerToken).addMember({ organizationId: t.orgId, email: "frank@example.test", role: Role.VIEWER });
    expect(await codeOf(auth.exchangeOidcToken({ idToken }))).toBe("Unauthenticated");
  });

  it("lets a new user in without an organization, able only to create one", async () => {
    const res = await h.client(AuthService).exchangeOidcToken({ idToken: await sign({ sub: "new-1", email: "new@example.test", email_verified: true }) });
    expect(res.principal?.organizationId).toBe("");
    const session = h.client(IdentityService, res.accessToken);
    expect(await codeOf(session.listProjects({ organizationId: t.orgId }))).toBe("PermissionDenied");
    const { organization } = await session.createOrganization({ name: "New Co", slug: `new-co-${Date.now()}` });
    const scoped = await h.client(AuthService).exchangeOidcToken({
      idToken: await sign({ sub: "new-1", email: "new@example.test", email_verified: true }),
      organizationId: organization!.id,
    });
    expect(scoped.principal).toMatchObject({ organizationId: organization!.id, role: Role.OWNER });
    expect(
      await codeOf(
        h
          .client(AuthService)
          .exchangeOidcToken({ idToken: await sign({ sub: "new-1", email: "new@example.test", email_verified: true }), organizationId: t.orgId }),
      ),
    ).toBe("NotFound");
  });

  it("rejects tokens for another audience, from another issuer, expired, or without a verified email", async () => {
    const auth = h.client(AuthService);
    const bad = [
      await sign({ sub: "x", email: "x@example.test" }, { aud: "someone-else" }),
      await sign({ sub: "x", email: "x@example.test" }, { iss: "https://evil.example" }),
      await sign({ sub: "x", email: "x@example.test" }, { exp: "-1m" }),
      await sign({ sub: "x", email: "x@example.test", email_verified: false }),
      await sign({ sub: "x" }),
    ];
    for (const idToken of bad) expect(await codeOf(auth.exchangeOidcToken({ idToken }))).toBe("Unauthenticated");
  });

  it("stops a source replaying bad ID tokens, and no one else", async () => {
    const limited = await startIdentity(
      { VANE_OIDC_ISSUER: issuer, VANE_OIDC_AUDIENCE: "vane-console", VANE_EXCHANGE_SOURCE_BUDGET: "30", VANE_TRUSTED_PROXY_HOPS: "1" },
      h.schema,
      { keepSchema: true },
    );
    try {
      const from = (source: string) => ({ headers: { "x-forwarded-for": source } });
      const auth = limited.client(AuthService);
      const forged = await sign({ sub: "x", email: "x@example.test" }, { aud: "someone-else" });
      const codes: string[] = [];
      for (let i = 0; i < 5; i++) codes.push(await codeOf(auth.exchangeOidcToken({ idToken: forged }, from("203.0.113.50"))));
      // 30 points: three failures (10 each), then refused, a valid token included.
      expect(codes).toEqual(["Unauthenticated", "Unauthenticated", "Unauthenticated", "ResourceExhausted", "ResourceExhausted"]);
      const valid = await sign({ sub: "provider-user-9", email: "nine@example.test", email_verified: true });
      const refused = await auth.exchangeOidcToken({ idToken: valid }, from("203.0.113.50")).catch((e: unknown) => ConnectError.from(e));
      expect(refused).toMatchObject({ code: Code.ResourceExhausted });
      expect(Number((refused as ConnectError).metadata.get("retry-after"))).toBeGreaterThan(0);
      expect(await codeOf(auth.exchangeOidcToken({ idToken: valid }, from("203.0.113.51")))).toBe("OK");
    } finally {
      await limited.close();
    }
  });
});
