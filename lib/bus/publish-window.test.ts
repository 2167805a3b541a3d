import { describe, expect, it } from "vitest";
import { createPublishWindow } from "./publish-window.ts";

describe("the publish window", () => {
  it("grants slots in order as acknowledgements come back, and refuses a caller that waited its time", async () => {
    const w = createPublishWindow(10);
    expect(await w.acquire(8, 1000)).toBe(true);
    const order: string[] = [];
    const big = w.acquire(6, 60_000).then((ok) => order.push(`big:${ok}`));
    // Would fit now, but waits behind the larger request that came first.
    const small = w.acquire(2, 60_000).then((ok) => order.push(`small:${ok}`));
    expect(await w.acquire(1, 1)).toBe(false);
    expect(order).toEqual([]);
    w.release(8);
    await Promise.all([big, small]);
    expect(order).toEqual(["big:true", "small:true"]);
    expect(w.inFlight()).toBe(8);
    // A request larger than the window takes the whole window rather than waiting forever.
    w.release(8);
    expect(await w.acquire(50, 1)).toBe(true);
    expect(w.inFlight()).toBe(10);
  });
});
