/** computeResults on hand-made sums: warnings, guardrails, conflict counts, relative always-valid intervals. */
import { describe, expect, it } from "vitest";
import { computeResults, type VariantSums } from "../results.ts";
import type { ExperimentRow, MetricRow } from "../schema.ts";

const experiment = {
  id: "x",
  variants: [
    { variant: "control", weight: 1 },
    { variant: "treatment", weight: 1 },
  ],
  control_variant: "control",
  metric_keys: { primary: ["converted"], secondary: [], guardrail: ["errors"] },
  metric_ids: { converted: "m1", errors: "m2" },
} as unknown as ExperimentRow;
const metrics = new Map([
  ["m1", { id: "m1", key: "converted", kind: "conversion", direction: "increase" } as MetricRow],
  ["m2", { id: "m2", key: "errors", kind: "conversion", direction: "decrease" } as MetricRow],
]);
/** Sums of a 0/1 metric with `units` units of which `ones` converted. */
const binary = (units: number, ones: number): VariantSums => ({
  units,
  sum: ones,
  sum_squares: ones,
  count_sum: ones,
  count_squares: ones,
  sum_count_product: ones,
  cov_sum: 0,
  cov_squares: 0,
  cov_product: 0,
});

function results(units: [number, number], errors: [number, number], conflicts = { units: 0, exposures: 0 }) {
  return computeResults(
    {
      experiment,
      metrics,
      sums: new Map([
        [
          "m1",
          new Map([
            ["control", binary(units[0], units[0] * 0.3)],
            ["treatment", binary(units[1], units[1] * 0.33)],
          ]),
        ],
        [
          "m2",
          new Map([
            ["control", binary(units[0], errors[0])],
            ["treatment", binary(units[1], errors[1])],
          ]),
        ],
      ]),
      units: new Map([
        ["control", units[0]],
        ["treatment", units[1]],
      ]),
      conflictingUnits: conflicts.units,
      conflictingExposures: conflicts.exposures,
    },
    0.95,
    new Date(),
  );
}

describe("results", () => {
  it("are quiet when nothing is wrong", () => {
    const r = results([5000, 5000], [100, 105]);
    expect(r.warnings).toEqual([]);
    expect(r.sampleRatio!.mismatch).toBe(false);
    expect(r.metrics[1].variants[1].guardrailViolated).toBe(false);
  });

  it("warn loudly about a sample-ratio mismatch, in words, first", () => {
    const r = results([5000, 5400], [100, 105]);
    expect(r.sampleRatio!.mismatch).toBe(true);
    expect(r.warnings[0].code).toBe("sample_ratio_mismatch");
    expect(r.warnings[0].message).toMatch(/^SAMPLE RATIO MISMATCH — do not trust these results/);
    expect(r.warnings[0].message).toContain("treatment 5,400 (51.9%, expected 50.0%)");
  });

  it("flag a guardrail that got significantly worse", () => {
    const r = results([5000, 5000], [100, 200]);
    const errors = r.metrics.find((m) => m.metricKey === "errors")!;
    expect(errors.role).toBe("guardrail");
    expect(errors.variants[1].guardrailViolated).toBe(true);
    expect(r.warnings.map((w) => [w.code, w.metricKey, w.variant])).toEqual([["guardrail_violated", "errors", "treatment"]]);
    // A significant primary metric is not a guardrail problem.
    expect(r.metrics[0].variants[1].guardrailViolated).toBe(false);
  });

  it("count conflicting exposures and units apart, and warn past 1% of units", () => {
    const few = results([5000, 5000], [100, 100], { units: 20, exposures: 45 });
    expect([few.conflictingExposures, few.conflictingUnits]).toEqual([45n, 20n]);
    expect(few.warnings).toEqual([]);
    const many = results([5000, 5000], [100, 100], { units: 150, exposures: 400 });
    expect(many.warnings.map((w) => w.code)).toEqual(["conflicting_exposures"]);
  });

  it("warn, per metric and variant, when the control's mean cannot be told from 0 (no bounded relative interval)", () => {
    // Two errors among 5,000 control units: the relative lift of "errors" has no bounded interval.
    const r = results([5000, 5000], [2, 3]);
    const errors = r.metrics.find((m) => m.metricKey === "errors")!;
    expect([errors.variants[1].relativeLiftInterval?.lower, errors.variants[1].relativeLiftInterval?.upper].every(Number.isNaN)).toBe(true);
    expect(r.warnings.map((w) => [w.code, w.metricKey, w.variant])).toEqual([["too_little_data", "errors", "treatment"]]);
    expect(r.warnings[0].message).toMatch(/cannot yet be told from zero/);
    // The converted metric, with 1,500 conversions, is bounded and unwarned.
    expect(Number.isFinite(r.metrics[0].variants[1].relativeLiftInterval?.lower)).toBe(true);
  });

  it("carry the relative always-valid interval around the relative lift, wider than the fixed one", () => {
    const v = results([5000, 5000], [100, 100]).metrics[0].variants[1];
    expect(v.relativeSequentialInterval!.lower).toBeLessThan(v.relativeLiftInterval!.lower);
    expect(v.relativeSequentialInterval!.upper).toBeGreaterThan(v.relativeLiftInterval!.upper);
    expect(v.relativeSequentialInterval!.lower).toBeLessThan(v.relativeLift);
    expect(v.relativeSequentialInterval!.upper).toBeGreaterThan(v.relativeLift);
  });

  it("put health first: the split, then the sample size, then what the metrics say", () => {
    // 40 against 95 units: a broken split and a small sample; 40 errors among 95 treatment units.
    const r = results([40, 95], [0, 40], { units: 2, exposures: 2 });
    const codes = r.warnings.map((w) => w.code);
    expect(codes[0]).toBe("sample_ratio_mismatch");
    expect(codes.indexOf("conflicting_exposures")).toBeLessThan(codes.indexOf("small_sample"));
    expect(codes.indexOf("small_sample")).toBeLessThan(codes.indexOf("guardrail_violated"));
    expect(codes.indexOf("conflicting_exposures")).toBeGreaterThan(0);
    expect(r.warnings.find((w) => w.code === "small_sample")!.message).toContain("control has 40 units, treatment has 95 units (fewer than 100 per arm)");
  });
});
