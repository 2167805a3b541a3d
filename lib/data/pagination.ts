/**
 * Keyset pagination: a page is fetched with `limit(size + 1)` past the sort key of the previous
 * page's last row; the token carrying that key is opaque to clients, stable under inserts, and
 * checked on the way in.
 */
import { Code, ConnectError } from "@connectrpc/connect";

/** The sort key of a page's last row, one string per ordering column. */
export type PageKey = readonly string[];

/** Page size with a default and a ceiling. */
export function pageSize(requested: number, fallback = 50, max = 200): number {
  return requested > 0 ? Math.min(requested, max) : fallback;
}

/** Encodes a sort key as an opaque token. */
export function encodePageToken(key: PageKey): string {
  return Buffer.from(JSON.stringify(key)).toString("base64url");
}

/**
 * Decodes a token from a previous response into a key of `arity` strings, each accepted by
 * `valid` when given; undefined for an empty token, INVALID_ARGUMENT when it was not ours.
 */
export function decodePageToken(token: string, arity: number, valid?: (part: string, index: number) => boolean): string[] | undefined {
  if (!token) return undefined;
  let key: unknown;
  try {
    key = JSON.parse(Buffer.from(token, "base64url").toString("utf8"));
  } catch {
    key = undefined;
  }
  if (Array.isArray(key) && key.length === arity && key.every((part, i) => typeof part === "string" && (valid?.(part, i) ?? true))) return key;
  throw new ConnectError("page_token is not a token from a previous response", Code.InvalidArgument);
}

/** The page out of rows fetched with `limit(size + 1)`, and the token of the next page ("" at the end). */
export function takePage<T>(rows: T[], size: number, keyOf: (row: T) => PageKey): { page: T[]; nextPageToken: string } {
  const page = rows.slice(0, size);
  return { page, nextPageToken: rows.length > size ? encodePageToken(keyOf(page[size - 1])) : "" };
}

/** The position after a row ordered by (created_at, id). */
export interface CreatedCursor {
  createdAt: Date;
  id: string;
}

/** Sort key of a row ordered by (created_at, id). */
export const createdKey = (row: { created_at: Date; id: string }): PageKey => [row.created_at.toISOString(), row.id];

/** Decodes a (created_at, id) token. */
export function decodeCreatedCursor(token: string): CreatedCursor | undefined {
  const key = decodePageToken(token, 2, (part, i) => i > 0 || !Number.isNaN(new Date(part).getTime()));
  return key && { createdAt: new Date(key[0]), id: key[1] };
}
