/**
 * HTTP entity tags as conditional requests use them (RFC 9110 §13.1.2): whether an
 * If-None-Match value names a response's ETag. Shared by every surface that answers "not
 * modified" (OFREP bulk, EvaluateAll, and Connect GET's 304 in lib/server/connect-adapter.ts).
 */
import { invalidArgument } from "#lib/process/errors.ts";

/** Longest If-None-Match value read (a browser sends one tag; a CDN a few). */
export const MAX_IF_NONE_MATCH = 2048;
const TAG = String.raw`(W/)?"[\x21\x23-\x7e]*"`;
const TAG_LIST = new RegExp(String.raw`^\s*(\*|${TAG}(\s*,\s*${TAG})*)\s*$`);

/**
 * Whether an If-None-Match value (`*`, or entity tags separated by commas, compared weakly)
 * names `etag`. Anything else is the caller's mistake: INVALID_ARGUMENT naming the header.
 */
export function ifNoneMatchNames(header: string | undefined | null, etag: string): boolean {
  if (header === undefined || header === null || header === "") return false;
  if (header.length > MAX_IF_NONE_MATCH || !TAG_LIST.test(header)) {
    throw invalidArgument(`If-None-Match must be * or a list of quoted entity tags (an earlier answer's ETag), at most ${MAX_IF_NONE_MATCH} characters`);
  }
  if (header.trim() === "*") return true;
  return header.split(",").some((t) => t.trim().replace(/^W\//, "") === etag);
}
