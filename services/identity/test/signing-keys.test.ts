/**
 * Signing keys as other services see them: identity's real server on port 0, its tokens verified
 * through the published JWKS with `remoteKeySet` (jose's cache, refetch on unknown kid), across a
 * routine rotation and a revocation made with the operator command
 * `services/identity/rotate-signing-key.ts`.
 */
import { execFile } from "node:child_process";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";
import { Code, ConnectError } from "@connectrpc/connect";
import { generateKeyPair, SignJWT } from "jose";
import { afterAll, beforeAll, describe, expect, it, vi } from "vitest";
import { AuthService } from "#gen/vane/identity/v1/auth_service_pb.js";
import { createTokenVerifier, remoteKeySet, type TokenVerifier } from "#lib/auth/auth.ts";
import { testDatabaseUrl, uniqueName } from "#test/support/harness.ts";
import { type IdentityHarness, startIdentity } from "./harness.ts";

const run = promisify(execFile);
const command = fileURLToPath(new URL("../rotate-signing-key.ts", import.meta.url));
const root = fileURLToPath(new URL("../../..", import.meta.url));

/** Runs the operator command; resolves with its exit code and output. */
async function rotateCommand(args: string[], env: Record<string, string>): Promise<{ code: number; stdout: string; stderr: string }> {
  try {
    const { stdout, stderr } = await run(process.execPath, ["--import", "tsx", command, ...args], {
      cwd: root,
      env: { PATH: process.env.PATH, VANE_LOG_LEVEL: "warn", ...env },
    });
    return { code: 0, stdout, stderr };
  } catch (err) {
    const e = err as { code: number; stdout: string; stderr: string };
    return { code: e.code, stdout: e.stdout, stderr: e.stderr };
  }
}

const kidOf = (token: string) => (JSON.parse(Buffer.from(token.split(".")[0], "base64url").toString()) as { kid: string }).kid;
const codeOf = (p: Promise<unknown>) =>
  p.then(
    () => "OK",
    (err: unknown) => Code[ConnectError.from(err).code],
  );

describe("signing keys through the published JWKS", () => {
  const prefix = `${uniqueName("rk")}_`;
  let h: IdentityHarness;
  let jwksUrl: string;
  let remote: TokenVerifier;
  const claims = { sub: "7d1c2c55-7f0e-4d1c-9d55-2a1f9f0e0a01", kind: "user" };
  const published = async () => ((await (await fetch(jwksUrl)).json()) as { keys: { kid: string }[] }).keys.map((k) => k.kid);

  beforeAll(async () => {
    // Scaled down: replicas reload every 200 ms, a new key is published 1 s before it signs.
    h = await startIdentity({ VANE_SIGNING_KEY_REFRESH: "200ms", VANE_SIGNING_KEY_PUBLISH_AHEAD: "1s" }, `${prefix}identity`);
    jwksUrl = `${h.baseUrl}/.well-known/jwks.json`;
    // What flags, collector, analytics and the evaluator use, with a cooldown scaled like the above.
    remote = createTokenVerifier({ issuer: "vane", keys: remoteKeySet(jwksUrl, { cooldownMs: 300 }) });
  });
  afterAll(async () => {
    await h?.close();
  });

  it("verifies identity's tokens, then a rotated key's, refetching the JWKS on the unknown kid", async () => {
    const first = await h.sign(claims);
    const k1 = kidOf(first);
    expect((await remote.verify(first)).subject).toBe(claims.sub);

    const k2 = await h.module.keys.rotate();
    // Published at once, signing only later: verifiers can learn it before its first token.
    expect(await published()).toEqual(expect.arrayContaining([k1, k2]));
    expect(kidOf(await h.sign(claims))).toBe(k1);
    await vi.waitFor(() => expect(h.module.keys.activeKid()).toBe(k2), { timeout: 5_000, interval: 100 });

    // The remote cache (fetched before the rotation) has no k2: jose refetches on the unknown kid.
    const second = await h.sign(claims);
    expect(kidOf(second)).toBe(k2);
    expect((await remote.verify(second)).subject).toBe(claims.sub);
    // The retired key stays published until its tokens expire: nobody is logged out.
    expect((await remote.verify(first)).subject).toBe(claims.sub);
    expect(await published()).toEqual(expect.arrayContaining([k1, k2]));
  });

  it("revokes every older key with `rotate-signing-key.ts --retire-previous`: their tokens stop verifying", async () => {
    const before = await h.sign(claims);
    const oldKids = await published();
    expect(await codeOf(remote.verify(before))).toBe("OK");

    const out = await rotateCommand(["--retire-previous"], { VANE_DATABASE_URL: testDatabaseUrl, VANE_SCHEMA_PREFIX: prefix });
    expect(out.stderr).toBe("");
    expect(out.code).toBe(0);
    const k3 = /created signing key (\S+)/.exec(out.stdout)![1];
    for (const kid of oldKids) expect(out.stdout).toContain(kid);

    // The running replica picks the new key up within its refresh period and unpublishes the rest.
    await vi.waitFor(() => expect(h.module.keys.activeKid()).toBe(k3), { timeout: 5_000, interval: 100 });
    expect(await published()).toEqual([k3]);
    const after = await h.sign(claims);
    expect(kidOf(after)).toBe(k3);
    await new Promise((r) => setTimeout(r, 350)); // past the remote verifier's refetch cooldown
    expect(await codeOf(remote.verify(after))).toBe("OK"); // unknown kid: refetched, old keys gone
    expect(await codeOf(remote.verify(before))).toBe("Unauthenticated");
    // Identity itself and a verifier that never saw the old keys reject them too.
    expect(await codeOf(h.client(AuthService, before).whoAmI({}))).toBe("Unauthenticated");
    expect(await codeOf(h.client(AuthService, after).whoAmI({}))).toBe("OK");
    const fresh = createTokenVerifier({ issuer: "vane", keys: remoteKeySet(jwksUrl) });
    expect(await codeOf(fresh.verify(before))).toBe("Unauthenticated");
    expect(await codeOf(fresh.verify(after))).toBe("OK");
  });

  it("publishes a new key with a routine `rotate-signing-key.ts`, keeping the current one signing until it is due", async () => {
    const active = h.module.keys.activeKid()!;
    const out = await rotateCommand([], { VANE_DATABASE_URL: testDatabaseUrl, VANE_SCHEMA_PREFIX: prefix, VANE_SIGNING_KEY_PUBLISH_AHEAD: "1s" });
    expect(out.code).toBe(0);
    const k4 = /created signing key (\S+)/.exec(out.stdout)![1];
    expect(out.stdout).toMatch(/sign with it 1 s from now/);
    await vi.waitFor(async () => expect(await published()).toEqual(expect.arrayContaining([active, k4])), { timeout: 5_000, interval: 100 });
    await vi.waitFor(() => expect(h.module.keys.activeKid()).toBe(k4), { timeout: 5_000, interval: 100 });
    expect(await published()).toContain(active); // retired, still published
  });

  it("explains a bad command line and missing configuration", async () => {
    const [usage, config, unmigrated] = await Promise.all([
      rotateCommand(["--retire-old"], { VANE_DATABASE_URL: testDatabaseUrl }),
      rotateCommand([], {}),
      rotateCommand([], { VANE_DATABASE_URL: testDatabaseUrl, VANE_SCHEMA_PREFIX: `${uniqueName("nope")}_` }),
    ]);
    expect(usage.code).toBe(2);
    expect(usage.stderr).toMatch(/usage: .*rotate-signing-key\.ts \[--retire-previous\]/);
    expect(config.code).toBe(78);
    expect(config.stderr).toMatch(/VANE_DATABASE_URL/);
    expect(unmigrated.code).toBe(1);
    expect(unmigrated.stderr).toMatch(/npm run migrate -- identity/);
  });
});

describe("automatic rotation", () => {
  let h: IdentityHarness;
  beforeAll(async () => {
    h = await startIdentity({ VANE_SIGNING_KEY_ROTATE_AFTER: "1s", VANE_SIGNING_KEY_REFRESH: "200ms", VANE_SIGNING_KEY_PUBLISH_AHEAD: "500ms" });
  });
  afterAll(async () => {
    await h?.close();
  });

  it("replaces a key once it is VANE_SIGNING_KEY_ROTATE_AFTER old, keeping the old one published", async () => {
    const first = h.module.keys.activeKid()!;
    const token = await h.sign({ sub: "7d1c2c55-7f0e-4d1c-9d55-2a1f9f0e0a02", kind: "user" });
    await vi.waitFor(() => expect(h.module.keys.activeKid()).not.toBe(first), { timeout: 10_000, interval: 100 });
    expect(h.module.keys.jwks().keys.map((k) => k.kid)).toContain(first);
    expect(await codeOf(h.client(AuthService, token).whoAmI({}))).toBe("OK");
  });
});

describe("remote verification while identity is down", () => {
  it("keeps verifying with the keys last fetched, without a fetch per call, and still refuses unknown keys", async () => {
    const h = await startIdentity();
    const jwksUrl = `${h.baseUrl}/.well-known/jwks.json`;
    const failures: unknown[] = [];
    // A 100 ms cache: old by the time identity is gone, so jose alone would refetch and fail.
    const keys = remoteKeySet(jwksUrl, { cacheMaxAgeMs: 100, retryAfterMs: 60_000, onStale: (err) => failures.push(err) });
    const verifier = createTokenVerifier({ issuer: "vane", keys });
    const token = await h.sign({ sub: "7d1c2c55-7f0e-4d1c-9d55-2a1f9f0e0a03", kind: "user" });
    expect(await codeOf(verifier.verify(token))).toBe("OK");
    await h.close();
    await new Promise((r) => setTimeout(r, 150));

    expect(await codeOf(verifier.verify(token))).toBe("OK");
    expect(await codeOf(verifier.verify(token))).toBe("OK");
    expect(failures).toHaveLength(1); // one failed fetch, then no retry within retryAfterMs
    const forged = await new SignJWT({ sub: "x", kind: "user" })
      .setProtectedHeader({ alg: "ES256", kid: "not-published" })
      .setIssuer("vane")
      .setAudience("vane")
      .setIssuedAt()
      .setExpirationTime("1m")
      .sign((await generateKeyPair("ES256")).privateKey);
    expect(await codeOf(verifier.verify(forged))).toBe("Unauthenticated");
    // Without any key fetched yet there is nothing to fall back on.
    const never = createTokenVerifier({ issuer: "vane", keys: remoteKeySet(jwksUrl) });
    expect(await codeOf(never.verify(token))).toBe("Unauthenticated");
  });
});
