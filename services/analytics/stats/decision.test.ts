/**
 * One scale: a decision's p-value, interval and verdict agree. Fieller's relative interval inverts
 * the same test as the absolute interval, so on every data set — fixed-horizon and sequential,
 * one- and two-sided — the relative interval, the absolute interval and the p-value say the same
 * thing about "no difference".
 */
import { describe, expect, it } from "vitest";
import { compareEstimates, type Sides } from "./compare.ts";
import { meanEstimate, type MeanSums } from "./estimates.ts";
import { analyzeExperiment, analyzeMetric } from "./experiment.ts";
import { createRng } from "./rng.ts";

const excludesZero = (ci: [number, number]) => ci[0] > 0 || ci[1] < 0;

/** An arm of n units, mean `mean`, skewed (5% buy, log-normal amounts) so Fieller is tested where the delta method fails. */
function arm(rng: ReturnType<typeof createRng>, n: number, scale: number): MeanSums {
  const s: MeanSums = { n, sum: 0, sumSquares: 0 };
  for (let i = 0; i < n; i++) {
    const y = rng.uniform() < 0.05 ? scale * Math.exp(3 + 2 * rng.normal()) : 0;
    s.sum += y;
    s.sumSquares += y * y;
  }
  return s;
}

describe("one scale: p-value and intervals agree", () => {
  const cases: [Sides, "higher" | "lower"][] = [
    ["two", "higher"],
    ["one", "higher"],
    ["one", "lower"],
  ];
  it.each(cases)("%s-sided, %s is better: fixed-horizon and sequential, on 600 data sets", (sides, direction) => {
    const rng = createRng(sides === "two" ? 31 : direction === "higher" ? 32 : 33);
    let rejections = 0;
    let sequentialRejections = 0;
    let checked = 0;
    for (let r = 0; r < 600; r++) {
      // Effects from none to large either way, so every outcome occurs.
      const effect = [0.3, 1, 3][r % 3];
      const c = compareEstimates(meanEstimate(arm(rng, 3000, 1)), meanEstimate(arm(rng, 3000, effect)), {
        sides,
        direction,
        sequentialTuningUnits: 6000,
      });
      if (!Number.isFinite(c.relative.estimate) || c.relative.ci.some(Number.isNaN)) continue;
      checked++;
      const significant = c.pValue < 0.05;
      expect(excludesZero(c.relative.ci)).toBe(significant);
      expect(excludesZero(c.absolute.ci)).toBe(significant);
      const sequential = c.sequential.pValue < 0.05;
      // (No bounded sequential relative interval while the control cannot be told from 0 at the wider critical value.)
      if (!c.sequential.relativeCi.some(Number.isNaN)) expect(excludesZero(c.sequential.relativeCi)).toBe(sequential);
      expect(excludesZero(c.sequential.absoluteCi)).toBe(sequential);
      if (sides === "one") {
        // Only an improvement can be significant; the interval is unbounded on the winning side.
        const winning = direction === "higher" ? c.relative.ci[1] : c.relative.ci[0];
        expect(Math.abs(winning)).toBe(Infinity);
        if (significant) expect(direction === "higher" ? c.absolute.estimate > 0 : c.absolute.estimate < 0).toBe(true);
      }
      if (significant) rejections++;
      if (sequential) sequentialRejections++;
    }
    // The agreement was tested on both outcomes, not only one.
    expect(checked).toBeGreaterThan(500);
    expect(rejections).toBeGreaterThan(50);
    expect(checked - rejections).toBeGreaterThan(50);
    expect(sequentialRejections).toBeGreaterThan(20);
  });

  it("the decision follows the chosen scale: relative lift and Fieller interval, or absolute", () => {
    const rng = createRng(34);
    const variants = [arm(rng, 4000, 1), arm(rng, 4000, 1.5)];
    const input = { key: "revenue", kind: "sum" as const, variants };
    const relative = analyzeMetric(input).variants[0];
    expect(relative.decision.lift).toBe(relative.relative.estimate);
    expect(relative.decision.interval).toEqual(relative.relative.ci);
    expect(relative.decision.pValue).toBe(relative.pValue);
    const absolute = analyzeMetric(input, { scale: "absolute", sequential: true }).variants[0];
    expect(absolute.decision.lift).toBe(absolute.absolute.estimate);
    expect(absolute.decision.interval).toEqual(absolute.sequential.absoluteCi);
    expect(absolute.decision.pValue).toBe(absolute.sequential.pValue);
    for (const v of [relative, absolute]) expect(excludesZero(v.decision.interval)).toBe(v.decision.verdict !== "inconclusive");
  });

  it("with a correction, the decision interval is at the level the correction tested: it agrees with the adjusted p-value", () => {
    const rng = createRng(35);
    let significant = 0;
    let total = 0;
    for (let r = 0; r < 40; r++) {
      const metrics = [0.3, 2.5, 1, 4].map((effect, i) => ({
        key: `m${i}`,
        kind: "sum" as const,
        variants: [arm(rng, 3000, 1), arm(rng, 3000, effect), arm(rng, 3000, 1 / effect)],
      }));
      for (const options of [
        { correction: "holm" as const },
        { correction: "benjamini-hochberg" as const, scale: "absolute" as const },
        { correction: "benjamini-hochberg" as const, sequential: true },
        { correction: "holm" as const, sides: "one" as const },
      ]) {
        for (const m of analyzeExperiment({ metrics }, options).metrics) {
          for (const v of m.variants) {
            if (v.decision.interval.some(Number.isNaN)) continue;
            total++;
            const decided = v.decision.verdict !== "inconclusive";
            if (decided) significant++;
            expect(excludesZero(v.decision.interval)).toBe(decided);
            expect(decided).toBe(v.decision.pValue < 0.05);
          }
        }
      }
    }
    expect(total).toBeGreaterThan(900);
    expect(significant).toBeGreaterThan(100);
    expect(total - significant).toBeGreaterThan(100);
  });
});
