/** The diff rendering and the interval bars of `experiments results`, as text (no terminal: no colour). */
import { create } from "@bufbuild/protobuf";
import { describe, expect, it } from "vitest";
import { IntervalSchema } from "#gen/vane/experiments/v1/experiments_pb.js";
import { intervalBar } from "../src/commands/experiments.ts";
import { renderChanges } from "../src/spec/render.ts";

describe("experiments results bars", () => {
  it("draws the interval on the shared axis with zero and the point estimate", () => {
    // Axis [-0.1, 0.3] over 24 cells: zero at cell 6, the interval 0.05..0.25 from cell 9 to 20.
    const bar = intervalBar(create(IntervalSchema, { lower: 0.05, upper: 0.25 }), 0.15, -0.1, 0.3);
    expect(bar).toBe("      │  ─────●──────   ");
    expect(intervalBar(create(IntervalSchema, { lower: -0.1, upper: 0.1 }), 0, -0.1, 0.3)).toBe("──────●──────           ");
    expect(intervalBar(undefined, 0, -1, 1)).toBe("");
  });
});

describe("diff rendering", () => {
  it("prints a header per change and a line diff of its YAML", () => {
    const text = renderChanges([
      { action: "update", kind: "targeting", key: "banner", environment: "staging", before: { enabled: false }, after: { enabled: true, default: "blue" } },
      { action: "archive", kind: "flag", key: "old", before: null, after: null },
    ]);
    expect(text).toBe(
      ["~ update targeting of flag banner in staging", "    -enabled: false", "    +enabled: true", "    +default: blue", "- archive flag old", ""].join("\n"),
    );
  });
});
