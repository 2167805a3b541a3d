/**
 * Rate limits of credential exchanges, through the real AuthService on the real Postgres: by
 * source address and by API key prefix, failures shared by two identity instances on one
 * database, windows driven by an injected clock (never by sleeping).
 */
import { randomBytes } from "node:crypto";
import { Code, ConnectError } from "@connectrpc/connect";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { AuthService } from "#gen/vane/identity/v1/auth_service_pb.js";
import { ApiKeyKind } from "#gen/vane/identity/v1/identity_pb.js";
import { IdentityService } from "#gen/vane/identity/v1/identity_service_pb.js";
import { uniqueName } from "#test/support/harness.ts";
import { type IdentityHarness, startIdentity, type Tenant } from "./harness.ts";

/** Small budgets: a source may fail 6 times a window (60 points, 10 per failure), a key prefix 5 times. */
const settings = { VANE_EXCHANGE_SOURCE_BUDGET: "60", VANE_EXCHANGE_KEY_FAILURES: "5", VANE_EXCHANGE_WINDOW: "1m", VANE_TRUSTED_PROXY_HOPS: "1" };
const SOURCE_FAILURES = 6;
const KEY_FAILURES = 5;

/** How an exchange ended: its code, and the Retry-After it carried. */
interface Outcome {
  code: string;
  retryAfter?: string | null;
  message?: string;
}

describe("credential exchange limits", () => {
  const schema = uniqueName("identity_limits");
  // 10 s into a minute: the window ends 50 s later.
  let clock = Date.UTC(2031, 0, 1, 12, 0, 10);
  const now = () => clock;
  let a: IdentityHarness;
  let b: IdentityHarness;
  let t: Tenant;
  let good: string;
  let other: string;
  let lastSource = 0;
  /** A source address no test has used yet. */
  const freshSource = () => `203.0.113.${++lastSource}`;

  beforeAll(async () => {
    a = await startIdentity(settings, schema, { now });
    b = await startIdentity(settings, schema, { now, keepSchema: true });
    t = await a.seedTenant();
    const owner = a.client(IdentityService, t.ownerToken);
    good = (await owner.createApiKey({ environmentId: t.environmentId, kind: ApiKeyKind.SERVER, name: "good" })).secret;
    other = (await owner.createApiKey({ environmentId: t.environmentId, kind: ApiKeyKind.SERVER, name: "other" })).secret;
  });
  afterAll(async () => {
    await b?.close();
    await a?.close();
  });

  /** Exchanges `apiKey` at `instance` as if from `source` (the gateway appended it to X-Forwarded-For). */
  async function exchange(instance: IdentityHarness, apiKey: string, source: string, protocol: "grpc" | "connect" = "grpc"): Promise<Outcome> {
    try {
      await instance.client(AuthService, undefined, protocol).exchangeApiKey({ apiKey }, { headers: { "x-forwarded-for": `198.18.0.1, ${source}` } });
      return { code: "OK" };
    } catch (err) {
      const e = ConnectError.from(err);
      return { code: Code[e.code], retryAfter: e.metadata.get("retry-after"), message: e.rawMessage };
    }
  }
  /** A wrong secret under a random prefix, or under `prefixOf`'s prefix. */
  const wrongKey = (prefixOf?: string) =>
    (prefixOf ? prefixOf.slice(0, 18) : `vane_server_${randomBytes(4).toString("base64url").slice(0, 6)}`) + randomBytes(30).toString("base64url").slice(0, 37);

  it("stops a burst of wrong keys from one source, and no one else", async () => {
    const attacker = freshSource();
    const outcomes: Outcome[] = [];
    for (let i = 0; i < 20; i++) outcomes.push(await exchange(a, wrongKey(), attacker, i % 2 ? "grpc" : "connect"));
    expect(outcomes.slice(0, SOURCE_FAILURES).map((o) => o.code)).toEqual(Array(SOURCE_FAILURES).fill("Unauthenticated"));
    for (const o of outcomes.slice(SOURCE_FAILURES)) {
      expect(o).toEqual({ code: "ResourceExhausted", retryAfter: "50", message: "too many credential exchanges from this address; retry in 50 s" });
    }
    // Refused before the key is looked at: a right key says nothing more than a wrong one.
    expect((await exchange(a, good, attacker)).code).toBe("ResourceExhausted");
    // Another source is not affected, with a right key or a wrong one.
    const neighbour = freshSource();
    expect((await exchange(a, good, neighbour)).code).toBe("OK");
    expect((await exchange(a, wrongKey(), neighbour)).code).toBe("Unauthenticated");
  });

  it("gains nothing from sending the burst all at once", async () => {
    const attacker = freshSource();
    const outcomes = await Promise.all(Array.from({ length: 40 }, () => exchange(a, wrongKey(), attacker)));
    const codes = outcomes.map((o) => o.code);
    expect(codes.filter((c) => c === "Unauthenticated").length).toBeLessThanOrEqual(SOURCE_FAILURES);
    expect(codes.filter((c) => c !== "Unauthenticated" && c !== "ResourceExhausted")).toEqual([]);
  });

  it("ignores X-Forwarded-For entries the client wrote itself", async () => {
    // One proxy is trusted: only the last entry counts, so varying the ones before gains nothing.
    const attacker = freshSource();
    const codes: string[] = [];
    for (let i = 0; i < SOURCE_FAILURES + 2; i++) codes.push((await exchange(a, wrongKey(), `10.0.0.${i}, ${attacker}`)).code);
    expect(codes.slice(SOURCE_FAILURES)).toEqual(["ResourceExhausted", "ResourceExhausted"]);
  });

  it("throttles guesses at one key's secret from any number of sources, and leaves other keys alone", async () => {
    const codes: string[] = [];
    for (let i = 0; i < KEY_FAILURES + 3; i++) codes.push((await exchange(a, wrongKey(good), freshSource())).code);
    expect(codes).toEqual([...Array(KEY_FAILURES).fill("Unauthenticated"), ...Array(3).fill("ResourceExhausted")]);
    const refused = await exchange(a, wrongKey(good), freshSource());
    expect(refused.message).toBe(`too many failed attempts with API key ${good.slice(0, 18)}…; retry in 50 s`);
    expect(refused.retryAfter).toBe("50");
    // A key of another prefix is not affected.
    expect((await exchange(a, other, freshSource())).code).toBe("OK");
  });

  it("shares the failed-attempt budget between two identity instances on one database", async () => {
    const attacker = freshSource();
    for (let i = 0; i < SOURCE_FAILURES; i++) expect((await exchange(a, wrongKey(), attacker)).code).toBe("Unauthenticated");
    expect((await exchange(a, wrongKey(), attacker)).code).toBe("ResourceExhausted");
    // Instance b has not seen this source: alone it would allow six failures. It learns the
    // shared count from its first and refuses from then on, whatever the key.
    expect((await exchange(b, wrongKey(), attacker)).code).toBe("Unauthenticated");
    expect((await exchange(b, wrongKey(), attacker)).code).toBe("ResourceExhausted");
    expect((await exchange(b, good, attacker)).code).toBe("ResourceExhausted");
    const stored = await b.module.database.db
      .selectFrom("credential_failures")
      .select("failures")
      .where("dimension", "=", "source")
      .where("subject", "=", attacker)
      .executeTakeFirstOrThrow();
    expect(stored.failures).toBe(SOURCE_FAILURES + 1);
  });

  it("lifts the limits when the window ends, and forgets the old window", async () => {
    const attacker = freshSource();
    for (let i = 0; i < SOURCE_FAILURES; i++) await exchange(a, wrongKey(), attacker);
    expect((await exchange(a, good, attacker)).code).toBe("ResourceExhausted");
    clock += 49_000;
    expect(await exchange(a, good, attacker)).toMatchObject({ code: "ResourceExhausted", retryAfter: "1" });
    clock += 1_000;
    expect((await exchange(a, good, attacker)).code).toBe("OK");
    expect((await exchange(a, wrongKey(good), attacker)).code).toBe("Unauthenticated");
    const windows = await a.module.database.db.selectFrom("credential_failures").select("window_start").distinct().execute();
    expect(windows.map((w) => w.window_start.getTime())).toEqual([Date.UTC(2031, 0, 1, 12, 1, 0)]);
  });

  it("limits by the peer address, whatever X-Forwarded-For says, unless a proxy is trusted", async () => {
    const direct = await startIdentity({ ...settings, VANE_TRUSTED_PROXY_HOPS: "0" }, schema, { now, keepSchema: true });
    try {
      const codes: string[] = [];
      for (let i = 0; i < SOURCE_FAILURES + 2; i++) codes.push((await exchange(direct, wrongKey(), freshSource())).code);
      expect(codes.slice(SOURCE_FAILURES)).toEqual(["ResourceExhausted", "ResourceExhausted"]);
      const stored = await direct.module.database.db
        .selectFrom("credential_failures")
        .select("subject")
        .where("dimension", "=", "source")
        .where("subject", "=", "127.0.0.1")
        .execute();
      expect(stored).toHaveLength(1);
    } finally {
      await direct.close();
    }
  });
});
