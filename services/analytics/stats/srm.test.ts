import { describe, expect, it } from "vitest";
import { createRng } from "./rng.ts";
import { sampleRatioMismatch } from "./srm.ts";

describe("sampleRatioMismatch", () => {
  it("matches scipy.stats.chisquare(f_obs, f_exp)", () => {
    const a = sampleRatioMismatch([5210, 4790], [1, 1]);
    expect(a.chiSquare).toBeCloseTo(17.64, 10);
    expect(a.pValue).toBeCloseTo(2.6691498031812692e-5, 15);
    expect(a.mismatch).toBe(true);
    const b = sampleRatioMismatch([3400, 3300, 3500], [1, 1, 1]);
    expect(b.chiSquare).toBeCloseTo(5.882352941176471, 12);
    expect(b.pValue).toBeCloseTo(0.0528035703343005, 12);
    expect(b.mismatch).toBe(false);
    const c = sampleRatioMismatch([1000, 2100, 900], [25, 50, 25]);
    expect(c.chiSquare).toBeCloseTo(15, 12);
    expect(c.pValue).toBeCloseTo(0.0005530843701478337, 14);
    expect(c.mismatch).toBe(true);
  });

  it("treats units in a zero-weight variant as a certain mismatch", () => {
    expect(sampleRatioMismatch([100, 3], [1, 0]).mismatch).toBe(true);
    expect(sampleRatioMismatch([100, 0], [1, 0]).pValue).toBe(1);
  });

  it("flags about 0.1% of correctly split experiments (simulation)", () => {
    const rng = createRng(2024);
    const runs = 20_000;
    let flagged = 0;
    for (let r = 0; r < runs; r++) {
      // 1000 units split 30/70 by the assignment.
      let a = 0;
      for (let u = 0; u < 1000; u++) if (rng.uniform() < 0.3) a++;
      if (sampleRatioMismatch([a, 1000 - a], [30, 70]).mismatch) flagged++;
    }
    // Binomial(20 000, 0.001): mean 20, sd 4.5; allow ±4 sd.
    expect(flagged).toBeGreaterThanOrEqual(2);
    expect(flagged).toBeLessThanOrEqual(38);
  });
});
