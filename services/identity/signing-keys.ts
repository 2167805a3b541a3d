/**
 * Identity's signing keys: ES256 key pairs kept in Postgres so every replica signs with the same
 * active key and publishes the same JWKS.
 *
 * A key's life: created and published at once, it starts signing only after `publishAheadMs`, so
 * every replica's JWKS (reloaded every `refreshMs`) and every verifier (which refetches on an
 * unknown `kid`, at most every 30 s) knows it before its first token arrives. When it starts
 * signing, the previous key is retired: it stays published until every token it signed has
 * expired, so a rotation never logs anyone out. A revoked (compromised) key is unpublished at
 * once, and its replacement signs immediately.
 */
import { randomUUID } from "node:crypto";
import { createLocalJWKSet, exportJWK, generateKeyPair, importJWK, type JSONWebKeySet, type JWK, type JWTVerifyGetKey, SignJWT } from "jose";
import { type Kysely, sql } from "kysely";
import { TOKEN_ALGORITHM, TOKEN_AUDIENCE, type VaneClaims } from "#lib/auth/auth.ts";
import type { Logger } from "#lib/process/logger.ts";
import type { IdentityDatabase } from "./schema.ts";

/** How often replicas reload the keys from Postgres by default. */
export const DEFAULT_KEY_REFRESH_MS = 60_000;
/** How long a new key is published before it signs, by default: a reload plus verifiers' 30 s cooldown, with margin. */
export const DEFAULT_PUBLISH_AHEAD_MS = DEFAULT_KEY_REFRESH_MS + 60_000;

/** Options for {@link createKeyRing}. */
export interface KeyRingOptions {
  issuer: string;
  /** Longest lifetime of any token, so retired keys stay published that long. */
  maxTokenTtlMs: number;
  /** Rotate automatically once the newest key is this old. */
  rotateAfterMs: number;
  /** How often replicas reload keys from Postgres (default {@link DEFAULT_KEY_REFRESH_MS}). */
  refreshMs?: number;
  /** How long a new key is published before it signs (default {@link DEFAULT_PUBLISH_AHEAD_MS}). */
  publishAheadMs?: number;
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
  /** The `kid` tokens are signed with now. */
  activeKid(): string | undefined;
  /** A key source for local verification, reloading once on an unknown `kid`. */
  keySet: JWTVerifyGetKey;
  /** Creates a new key (see {@link rotateSigningKey}) and reloads; returns its `kid`. */
  rotate(options?: { revokePrevious?: boolean }): Promise<string>;
  /** Reloads the keys from Postgres now (replicas also do so every `refreshMs`). */
  reload(): Promise<void>;
  stop(): void;
}

/** What {@link rotateSigningKey} did. */
export interface RotationResult {
  /** The new key. */
  kid: string;
  /** Keys revoked (unpublished) by this rotation. */
  revoked: string[];
  /** False when another replica rotated first (then `kid` is that replica's newest key). */
  created: boolean;
}

const ROTATION_LOCK = sql`select pg_advisory_xact_lock(hashtext('vane:identity:signing-keys'))`;

/**
 * Creates and publishes a new signing key. It signs once it has been published for the key ring's
 * `publishAheadMs`, unless `revokePrevious`: then every other key is revoked (unpublished and
 * retired) in the same transaction and the new key signs as soon as each replica reloads. With
 * `onlyIfNewest`, nothing happens unless that key is still the newest (concurrent replicas).
 */
export async function rotateSigningKey(
  db: Kysely<IdentityDatabase>,
  options: { revokePrevious?: boolean; onlyIfNewest?: string | null } = {},
): Promise<RotationResult> {
  const { publicKey, privateKey } = await generateKeyPair(TOKEN_ALGORITHM, { extractable: true });
  const kid = randomUUID();
  const privateJwk = JSON.stringify(await exportJWK(privateKey));
  const publicJwk = JSON.stringify(await exportJWK(publicKey));
  return db.transaction().execute(async (trx) => {
    await ROTATION_LOCK.execute(trx);
    if (options.onlyIfNewest !== undefined) {
      const newest = await trx.selectFrom("signing_keys").select("kid").where("revoked_at", "is", null).orderBy("created_at", "desc").executeTakeFirst();
      if ((newest?.kid ?? null) !== options.onlyIfNewest) return { kid: newest?.kid ?? "", revoked: [], created: false };
    }
    let revoked: string[] = [];
    if (options.revokePrevious) {
      const rows = await trx
        .updateTable("signing_keys")
        .set({ revoked_at: sql`now()`, retired_at: sql`coalesce(retired_at, now())` })
        .where("revoked_at", "is", null)
        .returning("kid")
        .execute();
      revoked = rows.map((r) => r.kid);
    }
    await trx.insertInto("signing_keys").values({ kid, private_jwk: privateJwk, public_jwk: publicJwk }).execute();
    return { kid, revoked, created: true };
  });
}

/** Creates the key ring over identity's database. */
export function createKeyRing(db: Kysely<IdentityDatabase>, opts: KeyRingOptions): KeyRing {
  const log = opts.logger.child({ component: "signing-keys" });
  const refreshMs = opts.refreshMs ?? DEFAULT_KEY_REFRESH_MS;
  const publishAheadMs = opts.publishAheadMs ?? DEFAULT_PUBLISH_AHEAD_MS;
  let active: { kid: string; key: Awaited<ReturnType<typeof importJWK>> } | undefined;
  let published: JSONWebKeySet = { keys: [] };
  let local = createLocalJWKSet(published);
  let timer: NodeJS.Timeout | undefined;
  let lastReload = 0;
  const seconds = (ms: number) => `${Math.ceil(ms / 1000)} seconds`;

  /** Loads the published keys, picks the signing key; with `checkRotation`, rotates an old one. */
  async function reload(checkRotation: boolean): Promise<void> {
    const rows = await db
      .selectFrom("signing_keys")
      .selectAll()
      // Decided by the database's clock, the same for every replica.
      .select(sql<boolean>`created_at <= now() - ${seconds(publishAheadMs)}::interval`.as("ready"))
      .select(sql<Date>`now()`.as("now"))
      .where("revoked_at", "is", null)
      .where((eb) => eb.or([eb("retired_at", "is", null), eb("retired_at", ">", sql<Date>`now() - ${seconds(opts.maxTokenTtlMs + 60_000)}::interval`)]))
      .orderBy("created_at", "desc")
      .execute();
    const unretired = rows.filter((r) => r.retired_at === null);
    // The newest key published long enough; else the oldest unretired one (the only one on a
    // fresh install or after a revocation).
    const current = unretired.find((r) => r.ready) ?? unretired.at(-1);
    if (current && current.kid !== active?.kid) {
      active = { kid: current.kid, key: await importJWK(current.private_jwk as JWK, TOKEN_ALGORITHM) };
      log.info({ kid: current.kid }, "signing with key");
    }
    if (current && unretired.some((r) => r.created_at < current.created_at)) {
      // Superseded keys stop signing everywhere; they stay published until their tokens expire.
      await db
        .updateTable("signing_keys")
        .set({ retired_at: sql`now()` })
        .where("retired_at", "is", null)
        .where("created_at", "<", current.created_at)
        .execute();
    }
    published = { keys: rows.map((r) => ({ ...(r.public_jwk as JWK), kid: r.kid, alg: TOKEN_ALGORITHM, use: "sig" })) };
    local = createLocalJWKSet(published);
    lastReload = Date.now();
    const newest = unretired[0];
    if (checkRotation && newest && newest.now.getTime() - newest.created_at.getTime() > opts.rotateAfterMs) {
      log.info({ kid: newest.kid }, "newest signing key is due for rotation");
      const r = await rotateSigningKey(db, { onlyIfNewest: newest.kid });
      if (r.created) log.info({ kid: r.kid, publishAheadMs }, "created a signing key; it signs once published long enough");
      await reload(false);
    }
  }

  const keySet: JWTVerifyGetKey = async (header, token) => {
    try {
      return await local(header, token);
    } catch (err) {
      // A key another replica created moments ago may not be loaded here yet.
      if (Date.now() - lastReload < 5_000) throw err;
      await reload(false);
      return local(header, token);
    }
  };

  return {
    async start() {
      await reload(false);
      if (!active) await rotateSigningKey(db, { onlyIfNewest: null });
      await reload(true);
      timer = setInterval(() => reload(true).catch((err: unknown) => log.warn({ err }, "reloading signing keys failed")), Math.max(refreshMs, 100));
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
    activeKid: () => active?.kid,
    keySet,
    async rotate(options = {}) {
      const r = await rotateSigningKey(db, options);
      await reload(false);
      return r.kid;
    },
    reload: () => reload(false),
    stop() {
      clearInterval(timer);
    },
  };
}
