/** The rollout editor's arithmetic and the change review, without a browser. */
import { describe, expect, it } from "vitest";
import { describeChanges } from "../src/diff.ts";
import { percentRollout, setShare, total } from "../src/rollout.ts";

describe("percentage rollout weights", () => {
  it("always sum to 100, keeping the edited share", () => {
    const three = [
      { variant: "a", percent: 34 },
      { variant: "b", percent: 33 },
      { variant: "c", percent: 33 },
    ];
    for (const target of [0, 1, 25, 50, 99, 100, 150, -10, 33.4]) {
      const next = setShare(three, "a", target);
      expect(total(next), `a=${target}`).toBe(100);
      expect(next.find((s) => s.variant === "a")!.percent).toBe(Math.max(0, Math.min(100, Math.round(target))));
      expect(next.every((s) => s.percent >= 0 && Number.isInteger(s.percent))).toBe(true);
    }
  });
  it("takes from the last other variants first, and gives back to them", () => {
    expect(setShare(percentRollout("on", "off", 0), "on", 25)).toEqual([
      { variant: "on", percent: 25 },
      { variant: "off", percent: 75 },
    ]);
    const shares = setShare(
      [
        { variant: "a", percent: 50 },
        { variant: "b", percent: 30 },
        { variant: "c", percent: 20 },
      ],
      "a",
      90,
    );
    expect(shares).toEqual([
      { variant: "a", percent: 90 },
      { variant: "b", percent: 10 },
      { variant: "c", percent: 0 },
    ]);
    expect(setShare(shares, "a", 60).map((s) => s.percent)).toEqual([60, 10, 30]);
  });
  it("a single variant holds 100", () => {
    expect(setShare([{ variant: "only", percent: 100 }], "only", 40)).toEqual([{ variant: "only", percent: 100 }]);
  });
});

describe("the change review", () => {
  const base = { enabled: false, defaultVariant: "off", rules: [] };
  const rollout = {
    id: "",
    uid: "u1",
    description: "",
    conditions: [],
    outcome: { kind: "rollout" as const, shares: percentRollout("on", "off", 25), bucketBy: "", seed: "", experimentId: "" },
  };
  it("names each change in words", () => {
    expect(describeChanges(base, { ...base, enabled: true, defaultVariant: "on", rules: [rollout] })).toEqual([
      "Turn the flag ON",
      "Default variant: off → on",
      "Add rule 1: everyone → on 25%, off 75%",
    ]);
  });
  it("is empty when nothing changes", () => {
    expect(describeChanges(base, { ...base })).toEqual([]);
  });
});

describe("the audit log's readable diff", () => {
  it("names each changed field, before and after", async () => {
    const { auditDiff } = await import("../src/diff.ts");
    expect(
      auditDiff({ enabled: false, defaultVariant: "off", rules: [], version: "1" }, { enabled: true, defaultVariant: "off", rules: [{}], version: "2" }),
    ).toEqual(["enabled: false → true", "rules: 0 items → 1 item"]);
    expect(auditDiff(null, { key: "x" })).toEqual(["created", "key: set to x"]);
    expect(auditDiff(null, { id: "u1", projectId: "p1", key: "x", enabled: false, tags: [], metadata: {}, owner: "" })).toEqual([
      "created",
      "enabled: set to false",
      "key: set to x",
    ]);
    expect(auditDiff({ a: 1, b: "x" }, { a: 1 })).toEqual(["b: removed (was x)"]);
  });
});
