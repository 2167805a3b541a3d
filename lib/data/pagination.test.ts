import { Code, ConnectError } from "@connectrpc/connect";
import { describe, expect, it } from "vitest";
import { createdKey, decodeCreatedCursor, decodePageToken, encodePageToken, pageSize, takePage } from "./pagination.ts";

const invalid = (fn: () => unknown) => {
  try {
    fn();
  } catch (e) {
    return ConnectError.from(e).code === Code.InvalidArgument;
  }
  return false;
};

describe("keyset pagination", () => {
  it("takes a page of `size` rows and a token only when there is more", () => {
    const rows = [{ k: "a" }, { k: "b" }, { k: "c" }];
    expect(takePage(rows, 2, (r) => [r.k])).toEqual({ page: rows.slice(0, 2), nextPageToken: encodePageToken(["b"]) });
    expect(takePage(rows, 3, (r) => [r.k])).toEqual({ page: rows, nextPageToken: "" });
    expect(takePage([], 3, (r: { k: string }) => [r.k])).toEqual({ page: [], nextPageToken: "" });
  });

  it("round-trips keys and refuses tokens that are not its own", () => {
    expect(decodePageToken("", 1)).toBeUndefined();
    expect(decodePageToken(encodePageToken(["x", "y"]), 2)).toEqual(["x", "y"]);
    expect(invalid(() => decodePageToken(encodePageToken(["x"]), 2))).toBe(true);
    expect(invalid(() => decodePageToken("%%%", 1))).toBe(true);
    expect(invalid(() => decodePageToken(Buffer.from("[1]").toString("base64url"), 1))).toBe(true);
    expect(invalid(() => decodePageToken(encodePageToken(["12a"]), 1, (p) => /^\d+$/.test(p)))).toBe(true);
  });

  it("keeps (created_at, id) cursors exact to the millisecond", () => {
    const row = { created_at: new Date("2026-12-05T04:00:00.123Z"), id: "o1" };
    expect(decodeCreatedCursor(encodePageToken(createdKey(row)))).toEqual({ createdAt: row.created_at, id: "o1" });
    expect(invalid(() => decodeCreatedCursor(encodePageToken(["not a date", "o1"])))).toBe(true);
  });

  it("bounds the page size", () => {
    expect(pageSize(0)).toBe(50);
    expect(pageSize(10)).toBe(10);
    expect(pageSize(10_000)).toBe(200);
  });
});
