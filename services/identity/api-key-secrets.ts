/**
 * API key secrets: 256 random bits behind a readable prefix. Only a SHA-256 hash is stored; with
 * that much entropy a slow password hash adds nothing but latency.
 */
import { createHash, randomBytes } from "node:crypto";
import type { KeyKindName } from "./schema.ts";

/** A new secret, e.g. `vane_server_3q2…`, and what is stored of it. */
export function newSecret(kind: KeyKindName): { secret: string; prefix: string; hash: Buffer } {
  const secret = `vane_${kind}_${randomBytes(32).toString("base64url")}`;
  return { secret, prefix: keyPrefixOf(secret)!, hash: hashSecret(secret) };
}

/**
 * The public part of a key, e.g. `vane_server_3q2x9a` (kind and 6 characters of the secret):
 * shown in ListApiKeys, and what failed exchanges are limited by. Undefined for a string that is
 * not shaped like a key.
 */
export function keyPrefixOf(secret: string): string | undefined {
  return /^vane_(?:server|client|admin|personal)_[A-Za-z0-9_-]{6}/.exec(secret)?.[0];
}

/** The stored form of a secret. */
export function hashSecret(secret: string): Buffer {
  return createHash("sha256").update(secret, "utf8").digest();
}
