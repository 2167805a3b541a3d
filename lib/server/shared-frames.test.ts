import { describe, expect, it } from "vitest";
import { frameOnce, shareMessage } from "./shared-frames.ts";

describe("shared frames", () => {
  it("encodes a shared message once, any other message every time", () => {
    let encoded = 0;
    const encode = () => (encoded++, Buffer.from([encoded]));
    const shared = shareMessage({});
    expect(frameOnce(shared, encode)).toBe(frameOnce(shared, encode));
    expect(encoded).toBe(1);
    const plain = {};
    frameOnce(plain, encode);
    frameOnce(plain, encode);
    expect(encoded).toBe(3);
  });
});
