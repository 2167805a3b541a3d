import { describe, expect, it } from "vitest";
import { createMurmur3Prefix, murmur3Utf8, murmur3Utf8Continue } from "./murmur3.ts";
import { referenceMurmur3 } from "./reference-murmur3.ts";

describe("murmur3Utf8", () => {
  it("matches published MurmurHash3 x86_32 vectors", () => {
    expect(murmur3Utf8("")).toBe(0);
    expect(murmur3Utf8("", 1)).toBe(0x514e28b7);
    expect(murmur3Utf8("", 0xffffffff)).toBe(0x81f16f39);
    expect(murmur3Utf8("\0\0\0\0")).toBe(0x2362f9de);
    expect(murmur3Utf8("hello")).toBe(0x248bfa47);
    expect(murmur3Utf8("The quick brown fox jumps over the lazy dog")).toBe(0x2e4ff723);
    expect(murmur3Utf8("a", 0x9747b28c)).toBe(0x7fa09ea6);
    expect(murmur3Utf8("aaaa", 0x9747b28c)).toBe(0x5a97808a);
    expect(murmur3Utf8("Hello, world!", 0x9747b28c)).toBe(0x24884cba);
    expect(murmur3Utf8("The quick brown fox jumps over the lazy dog", 0x9747b28c)).toBe(0x2fa826cd);
  });

  it("hashes the UTF-8 bytes of non-ASCII text", () => {
    // Published vector: "ππππππππ" (16 UTF-8 bytes), seed 0x9747b28c.
    expect(murmur3Utf8("ππππππππ", 0x9747b28c)).toBe(0xd58063c1);
    for (const s of ["é", "naïve-user", "用户-42", "🚀", "a🚀b", "ключ", "e\u0301", "\u{10ffff}", "\u0800", "\u07ff"]) {
      expect(murmur3Utf8(s)).toBe(referenceMurmur3(Buffer.from(s, "utf8")));
    }
  });

  it("encodes lone surrogates as U+FFFD, like TextEncoder", () => {
    for (const s of ["\ud800", "x\udc00y", "\ud83d", "\ud83dabc"]) {
      expect(murmur3Utf8(s)).toBe(referenceMurmur3(Buffer.from(new TextEncoder().encode(s))));
    }
  });

  it("agrees with the reference on random strings of every length", () => {
    let seed = 42;
    const rnd = () => (seed = (Math.imul(seed, 1103515245) + 12345) >>> 0) / 2 ** 32;
    const alphabet = ["a", "Z", "0", "-", "é", "ß", "中", "🙂", "\u0000", "ñ", "𝄞"];
    for (let i = 0; i < 500; i++) {
      let s = "";
      const n = Math.floor(rnd() * 20);
      for (let j = 0; j < n; j++) s += alphabet[Math.floor(rnd() * alphabet.length)];
      expect(murmur3Utf8(s)).toBe(referenceMurmur3(Buffer.from(s, "utf8")));
    }
  });

  it("continues from a prefix state exactly as hashing the concatenation", () => {
    for (const [a, b] of [
      ["flag", "user-1"],
      ["", "x"],
      ["abc", ""],
      ["é", "🚀🚀"],
      ["exactly4", "more"],
      ["ab", "c"],
    ]) {
      expect(murmur3Utf8Continue(createMurmur3Prefix(a), b)).toBe(murmur3Utf8(a + b));
    }
  });
});
