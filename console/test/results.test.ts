/** The results' wording: unbounded intervals as "—", p-values as people read them, verdicts by the metric's direction. */
import { create } from "@bufbuild/protobuf";
import { describe, expect, it } from "vitest";
import { Direction, IntervalSchema, VariantResultSchema } from "#gen/vane/experiments/v1/experiments_pb.js";
import { interval, mean, percent, pValue, verdict } from "../src/results.ts";

describe("results wording", () => {
  it("shows an interval without bounds as — and a bounded one as signed percentages", () => {
    expect(interval(create(IntervalSchema, { lower: Number.NaN, upper: Number.NaN }))).toBe("—");
    expect(interval(undefined)).toBe("—");
    expect(interval(create(IntervalSchema, { lower: -0.012, upper: 0.25 }))).toBe("[-1.2%, +25%]");
    expect(percent(Number.NaN)).toBe("—");
    expect(mean(Number.NaN)).toBe("—");
  });

  it("writes tiny p-values as < 0.001", () => {
    expect(pValue(1e-9)).toBe("< 0.001");
    expect(pValue(0.0421)).toBe("0.042");
  });

  it("calls a significant rise better when higher is better, and worse when lower is better", () => {
    const up = create(VariantResultSchema, { absoluteLift: 0.1, adjustedPValue: 0.001 });
    expect(verdict(up, Direction.INCREASE, 0.95).kind).toBe("better");
    expect(verdict(up, Direction.DECREASE, 0.95).kind).toBe("worse");
    const unclear = create(VariantResultSchema, { absoluteLift: 0.1, adjustedPValue: 0.2 });
    expect(verdict(unclear, Direction.INCREASE, 0.95).kind).toBe("unclear");
    expect(verdict(create(VariantResultSchema, { absoluteLift: 0.1, adjustedPValue: Number.NaN }), Direction.INCREASE, 0.95).kind).toBe("unclear");
  });
});
