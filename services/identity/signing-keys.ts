/**
 * Identity's signing keys: ES256 key pairs kept in Postgres so every replica signs with the same
 * active key and publishes the same JWKS. Rotation retires the active key; a retired key stays in
 * the JWKS until every token it signed has expired, so rotation never logs anyone out.
 */
import { randomUUID } from "node:crypto";
import {
  createLocalJWKSet,
  exportJWK,
  generateKeyPair,
  importJWK,
  type JSONWebKeySet,
  type JWK,
  type JWTVerifyGetKey,
  SignJWT,
} from "jose";
import { type Kysely, sql } from "kysely";
import { TOKEN_ALGORITHM, TOKEN_AUDIENCE, type VaneClaims } from "#lib/auth.ts";
import type { Logger } from "#lib/logger.ts";
import type { IdentityDatabase } from "./schema.ts";

/** Options for {@link createKeyRing}. */
export interface KeyRingOptions {
  issuer: string;
  /** Longest lifetime of any token, so retired keys stay published that long. */
  maxTokenTtlMs: number;
  /** Rotate automatically once the active key is this old. */
  rotateAfterMs: number;
  /** How often replicas reload keys from Postgres. */
  refreshMs?: number;
  logger: Logger;
}

/** The signing keys, loaded and kept fresh. */
export interface KeyRing {
  /** Loads keys, creating the first one if none exists. */
  start(): Promise<void>;
  /** Signs an access token with the active key. */
  sign(claims: VaneClaims, ttlMs: number): Promise<{ token: string; expiresAt: Date }>;
  /** The public keys, for `/.well-known/jwks.json`. */
  jwks(): JSONWebKeySet;
  /** A key source for local verification, reloading once on an unknown `kid`. */
  keySet: JWTVerifyGetKey;
  /** Retires the active key and starts signing with a new one. */
  rotate(): Promise<string>;
  stop(): void;
}

/** Creates the key ring over identity's database. */
export function createKeyRing(db: Kysely<IdentityDatabase>, opts: KeyRingOptions): KeyRing {
  const log = opts.logger.child({ component: "signing-keys" });
  let active: { kid: string; key: Awaited<ReturnType<typeof importJWK>> } | undefined;
  let published: JSONWebKeySet = { keys: [] };
  let local = createLocalJWKSet(published);
  let timer: NodeJS.Timeout | undefined;
  let lastReload = 0;

  /** Loads the published keys; with `checkRotation`, rotates a key that has grown too old. */
  async function reload(checkRotation: boolean): Promise<void> {
    const rows = await db
      .selectFrom("signing_keys")
      .selectAll()
      .where((eb) =>
        eb.or([
          eb("retired_at", "is", null),
          eb("retired_at", ">", sql<Date>`now() - ${`${Math.ceil(opts.maxTokenTtlMs / 1000) + 60} seconds`}::interval`),
        ]),
      )
      .orderBy("created_at", "desc")
      .execute();
    const current = rows.find((r) => r.retired_at === null);
    if (current && current.kid !== active?.kid) {
      active = { kid: current.kid, key: await importJWK(current.private_jwk as JWK, TOKEN_ALGORITHM) };
    }
    published = { keys: rows.map((r) => ({ ...(r.public_jwk as JWK), kid: r.kid, alg: TOKEN_ALGORITHM, use: "sig" })) };
    local = createLocalJWKSet(published);
    lastReload = Date.now();
    if (checkRotation && current && Date.now() - current.created_at.getTime() > opts.rotateAfterMs) {
      log.info({ kid: current.kid }, "active signing key is due for rotation");
      await rotateOnce(current.kid);
    }
  }

  /** Creates a new active key unless another replica already replaced `expectedKid`. */
  async function rotateOnce(expectedKid: string | undefined): Promise<string> {
    const { publicKey, privateKey } = await generateKeyPair(TOKEN_ALGORITHM, { extractable: true });
    const kid = randomUUID();
    const created = await db.transaction().execute(async (trx) => {
      await sql`select pg_advisory_xact_lock(hashtext('vane:identity:signing-keys'))`.execute(trx);
      const current = await trx.selectFrom("signing_keys").select("kid").where("retired_at", "is", null).executeTakeFirst();
      if (current?.kid !== expectedKid) return false;
      await trx.updateTable("signing_keys").set({ retired_at: new Date() }).where("retired_at", "is", null).execute();
      await trx
        .insertInto("signing_keys")
        .values({
          kid,
          private_jwk: JSON.stringify(await exportJWK(privateKey)),
          public_jwk: JSON.stringify(await exportJWK(publicKey)),
        })
        .execute();
      return true;
    });
    if (created) log.info({ kid, retired: expectedKid }, "signing key rotated");
    await reload(false);
    return active?.kid ?? kid;
  }

  const keySet: JWTVerifyGetKey = async (header, token) => {
    try {
      return await local(header, token);
    } catch (err) {
      // A replica that rotated moments ago may have signed with a key we have not loaded yet.
      if (Date.now() - lastReload < 5_000) throw err;
      await reload(false);
      return local(header, token);
    }
  };

  return {
    async start() {
      await reload(false);
      if (!active) await rotateOnce(undefined);
      await reload(true);
      timer = setInterval(() => reload(true).catch((err: unknown) => log.warn({ err }, "reloading signing keys failed")), opts.refreshMs ?? 60_000);
      timer.unref();
    },
    async sign(claims, ttlMs) {
      if (!active) throw new Error("no active signing key: the key ring has not started");
      const now = Math.floor(Date.now() / 1000);
      const exp = now + Math.floor(ttlMs / 1000);
      const token = await new SignJWT(claims)
        .setProtectedHeader({ alg: TOKEN_ALGORITHM, kid: active.kid, typ: "at+jwt" })
        .setIssuer(opts.issuer)
        .setAudience(TOKEN_AUDIENCE)
        .setIssuedAt(now)
        .setExpirationTime(exp)
        .setJti(randomUUID())
        .sign(active.key);
      return { token, expiresAt: new Date(exp * 1000) };
    },
    jwks: () => published,
    keySet,
    rotate: () => rotateOnce(active?.kid),
    stop() {
      clearInterval(timer);
    },
  };
}
