/** The results' wording: unbounded intervals as "—", p-values as people read them, verdicts by the metric's direction. */
import { create } from "@bufbuild/protobuf";
import { describe, expect, it } from "vitest";
import { Direction, IntervalSchema, VariantResultSchema } from "#gen/vane/experiments/v1/experiments_pb.js";
import { interval, lift, mean, percent, pValue, verdict } from "../src/results.ts";

describe("results wording", () => {
  it("shows an interval without bounds as — and a bounded one as signed percentages", () => {
    expect(interval(create(IntervalSchema, { lower: Number.NaN, upper: Number.NaN }))).toBe("—");
    expect(interval(undefined)).toBe("—");
    expect(interval(create(IntervalSchema, { lower: -0.012, upper: 0.25 }))).toBe("[-1.2%, +25%]");
    expect(percent(Number.NaN)).toBe("—");
    expect(mean(Number.NaN)).toBe("—");
  });

  it("opens a one-sided interval on its losing side and writes absolute lifts in the metric's units", () => {
    expect(interval(create(IntervalSchema, { lower: 0.012, upper: Number.POSITIVE_INFINITY }))).toBe("[+1.2%, ∞)");
    expect(interval(create(IntervalSchema, { lower: Number.NEGATIVE_INFINITY, upper: -0.5 }), true)).toBe("(−∞, -0.5]");
    expect(lift(0.123456, true)).toBe("+0.123");
    expect(lift(0.05)).toBe("+5.0%");
  });

  it("writes tiny p-values as < 0.001", () => {
    expect(pValue(1e-9)).toBe("< 0.001");
    expect(pValue(0.0421)).toBe("0.042");
  });

  it("follows the server's decision, better or worse by the metric's direction", () => {
    const up = create(VariantResultSchema, { absoluteLift: 0.1, significant: true });
    expect(verdict(up, Direction.INCREASE).kind).toBe("better");
    expect(verdict(up, Direction.DECREASE).kind).toBe("worse");
    // A small corrected p-value alone is not the decision (a one-sided test, the Bayesian rule).
    expect(verdict(create(VariantResultSchema, { absoluteLift: 0.1, adjustedPValue: 0.001, significant: false }), Direction.INCREASE).kind).toBe("unclear");
  });
});
