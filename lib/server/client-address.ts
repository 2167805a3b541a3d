/**
 * Who is calling, by network address: the TCP peer of every Connect/gRPC request (put in the
 * handler context by the server), or, behind proxies you run, the address they appended to
 * X-Forwarded-For. Used to rate-limit by source (identity's credential exchanges).
 */
import { isIP } from "node:net";
import { createContextKey, createContextValues, type ContextValues, type HandlerContext } from "@connectrpc/connect";

/** The request's TCP peer address, as the server saw it. */
export const peerAddressKey = createContextKey<string | undefined>(undefined, { description: "peer address" });

/** Context values of a Node request: its peer address (lib/server/server.ts sets them on every call). */
export function requestContextValues(req: { socket?: { remoteAddress?: string } | null }): ContextValues {
  return createContextValues().set(peerAddressKey, req.socket?.remoteAddress);
}

/**
 * The caller's address. With `trustedProxyHops` = 0 (the default) the TCP peer; with N > 0, the
 * X-Forwarded-For entry N places from the right: the one the outermost of your N proxies
 * appended. Entries further left are whatever the client sent and are never trusted. A request
 * with fewer entries did not come through those proxies (e.g. from inside the cluster): its peer
 * is used.
 */
export function clientAddress(ctx: HandlerContext, trustedProxyHops: number): string {
  const peer = normalize(ctx.values.get(peerAddressKey) ?? "") || "unknown";
  if (trustedProxyHops <= 0) return peer;
  const entries = (ctx.requestHeader.get("x-forwarded-for") ?? "")
    .split(",")
    .map((e) => e.trim())
    .filter(Boolean);
  const entry = entries.length >= trustedProxyHops ? normalize(entries[entries.length - trustedProxyHops]) : "";
  return entry || peer;
}

/** An IP address without port, brackets or IPv4-mapped prefix; "" when it is none. */
function normalize(raw: string): string {
  let a = raw.trim();
  const bracketed = /^\[([^\]]+)\](?::\d+)?$/.exec(a);
  if (bracketed) a = bracketed[1];
  else if (/^[\d.]+:\d+$/.test(a)) a = a.slice(0, a.lastIndexOf(":"));
  if (/^::ffff:[\d.]+$/i.test(a)) a = a.slice(7);
  return isIP(a) ? a.toLowerCase() : "";
}

/**
 * The unit a source is limited by: an IPv4 address, or an IPv6 /64 (what one subscriber is
 * usually given, so cycling through its addresses gains nothing).
 */
export function sourceOf(address: string): string {
  if (isIP(address) !== 6) return address;
  const [head, tail = ""] = address.split("::");
  const left = head ? head.split(":") : [];
  const right = tail ? tail.split(":") : [];
  const groups = address.includes("::") ? [...left, ...Array(8 - left.length - right.length).fill("0"), ...right] : left;
  return `${groups
    .slice(0, 4)
    .map((g) => g.replace(/^0+(?=.)/, ""))
    .join(":")}::/64`;
}
