/**
 * API key secrets: 256 random bits behind a readable prefix. Only a SHA-256 hash is stored; with
 * that much entropy a slow password hash adds nothing but latency.
 */
import { createHash, randomBytes } from "node:crypto";
import type { KeyKindName } from "./schema.ts";

/** A new secret, e.g. `vane_server_3q2…`, and what is stored of it. */
export function newSecret(kind: KeyKindName): { secret: string; prefix: string; hash: Buffer } {
  const secret = `vane_${kind}_${randomBytes(32).toString("base64url")}`;
  return { secret, prefix: secret.slice(0, secret.indexOf("_", 5) + 7), hash: hashSecret(secret) };
}

/** The stored form of a secret. */
export function hashSecret(secret: string): Buffer {
  return createHash("sha256").update(secret, "utf8").digest();
}
