/** The always-valid numbers carried across looks: running intersection and running minimum. */
import { create } from "@bufbuild/protobuf";
import { describe, expect, it } from "vitest";
import { ResultsSchema } from "#gen/vane/experiments/v1/experiments_pb.js";
import { accumulateSequential } from "../results.ts";

const look = (lower: number, upper: number, p: number) =>
  create(ResultsSchema, {
    metrics: [
      {
        metricKey: "converted",
        variants: [
          { variant: "control" },
          {
            variant: "treatment",
            sequentialInterval: { lower, upper },
            relativeSequentialInterval: { lower: lower / 10, upper: upper / 10 },
            sequentialPValue: p,
          },
        ],
      },
    ],
  });
const seq = (r: ReturnType<typeof look>) => {
  const v = r.metrics[0].variants[1];
  return [
    v.sequentialInterval?.lower,
    v.sequentialInterval?.upper,
    v.relativeSequentialInterval?.lower,
    v.relativeSequentialInterval?.upper,
    v.sequentialPValue,
  ];
};

describe("accumulateSequential", () => {
  it("intersects the intervals and keeps the smallest p-value seen", () => {
    const looks = [look(-1, 3, 0.2), look(0.5, 4, 0.5), look(-2, 2.5, 0.04)];
    accumulateSequential(looks);
    expect(seq(looks[0])).toEqual([-1, 3, -0.1, 0.3, 0.2]);
    expect(seq(looks[1])).toEqual([0.5, 3, 0.05, 0.3, 0.2]);
    expect(seq(looks[2])).toEqual([0.5, 2.5, 0.05, 0.25, 0.04]);
  });

  it("keeps the current interval when the intersection would be empty, and ignores control", () => {
    const looks = [look(-1, 0, 0.3), look(1, 2, 0.6)];
    accumulateSequential(looks);
    expect(seq(looks[1])).toEqual([1, 2, 0.1, 0.2, 0.3]);
    expect(looks[1].metrics[0].variants[0].sequentialInterval).toBeUndefined();
  });
});
