import { describe, expect, it } from "vitest";
import { adjustPValues } from "./multiple-testing.ts";

describe("adjustPValues", () => {
  const ps = [0.01, 0.04, 0.03, 0.005, 0.2, 0.5, 0.045];

  it("Benjamini–Hochberg matches scipy.stats.false_discovery_control(ps, method='bh')", () => {
    const expected = [0.035, 0.063, 0.063, 0.035, 0.23333333333333336, 0.5, 0.063];
    adjustPValues(ps, "benjamini-hochberg").forEach((p, i) => expect(p).toBeCloseTo(expected[i], 14));
  });

  it("Holm matches the step-down computation by hand", () => {
    // Sorted 0.005, 0.01, 0.03, 0.04 with m = 4: 4·0.005 = 0.02, 3·0.01 = 0.03, 2·0.03 = 0.06,
    // 1·0.04 = 0.04 → raised to the running maximum 0.06.
    const adjusted = adjustPValues([0.01, 0.04, 0.03, 0.005], "holm");
    [0.03, 0.06, 0.06, 0.02].forEach((p, i) => expect(adjusted[i]).toBeCloseTo(p, 14));
    expect(adjustPValues([0.5, 0.6], "holm")).toEqual([1, 1]);
  });

  it("leaves NaN out of the family and 'none' unchanged", () => {
    const adjusted = adjustPValues([0.01, NaN, 0.02], "benjamini-hochberg");
    expect(adjusted[0]).toBeCloseTo(0.02, 14);
    expect(Number.isNaN(adjusted[1])).toBe(true);
    expect(adjustPValues(ps, "none")).toEqual(ps);
  });
});
