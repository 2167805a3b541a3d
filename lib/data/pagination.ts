/**
 * Keyset pagination tokens: opaque to clients, stable under inserts, checked on the way in.
 */
import { Code, ConnectError } from "@connectrpc/connect";

/** The position after the last row of a page: its creation time and id. */
export interface PageCursor {
  createdAt: Date;
  id: string;
}

/** Page size with a default and a ceiling. */
export function pageSize(requested: number, fallback = 50, max = 200): number {
  return requested > 0 ? Math.min(requested, max) : fallback;
}

/** Encodes a cursor as an opaque token. */
export function encodePageToken(c: PageCursor): string {
  return Buffer.from(JSON.stringify([c.createdAt.toISOString(), c.id])).toString("base64url");
}

/** Decodes a token from a previous response; INVALID_ARGUMENT when it was not ours. */
export function decodePageToken(token: string): PageCursor | undefined {
  if (!token) return undefined;
  try {
    const [at, id] = JSON.parse(Buffer.from(token, "base64url").toString("utf8")) as [string, string];
    const createdAt = new Date(at);
    if (typeof id !== "string" || Number.isNaN(createdAt.getTime())) throw new Error("bad cursor");
    return { createdAt, id };
  } catch {
    throw new ConnectError("page_token is not a token from a previous response", Code.InvalidArgument);
  }
}
