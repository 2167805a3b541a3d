import { describe, expect, it } from "vitest";
import { compareSemVer, parseSemVer, semVerOperator } from "./semver.ts";

describe("parseSemVer", () => {
  it("parses full, prefixed and partial versions", () => {
    expect(parseSemVer("1.2.3")).toEqual({ major: 1, minor: 2, patch: 3, pre: [] });
    expect(parseSemVer("v1.2.3-rc.1+b7")).toEqual({ major: 1, minor: 2, patch: 3, pre: ["rc", 1] });
    expect(parseSemVer("V10.0.1")?.major).toBe(10);
    expect(parseSemVer("1")).toEqual({ major: 1, minor: 0, patch: 0, pre: [] });
    expect(parseSemVer("1.2")).toEqual({ major: 1, minor: 2, patch: 0, pre: [] });
    expect(parseSemVer(2)).toEqual({ major: 2, minor: 0, patch: 0, pre: [] });
  });
  it.each(["", "x", "1.2.3.4", "01.2.3", "1.02.3", "1.2.3-01", "1.2.3-", "=1.2.3", "1.2.x", "01", "9007199254740993.0.0"])("rejects %j", (s) => {
    expect(parseSemVer(s)).toBeNull();
  });
});

describe("compareSemVer", () => {
  it("orders by semver 2.0.0 precedence", () => {
    const ordered = [
      "1.0.0-alpha",
      "1.0.0-alpha.1",
      "1.0.0-alpha.beta",
      "1.0.0-beta",
      "1.0.0-beta.2",
      "1.0.0-beta.11",
      "1.0.0-rc.1",
      "1.0.0",
      "1.0.1",
      "1.1.0",
      "2.0.0",
    ];
    for (let i = 0; i + 1 < ordered.length; i++) {
      const a = parseSemVer(ordered[i])!;
      const b = parseSemVer(ordered[i + 1])!;
      expect(compareSemVer(a, b), `${ordered[i]} < ${ordered[i + 1]}`).toBe(-1);
      expect(compareSemVer(b, a)).toBe(1);
    }
  });
});

describe("semVerOperator", () => {
  it("returns null on bad arguments", () => {
    expect(semVerOperator(["1.0.0", "="])).toBeNull();
    expect(semVerOperator(["1.0.0", "?", "1.0.0"])).toBeNull();
    expect(semVerOperator([null, "=", "1.0.0"])).toBeNull();
  });
  it("implements ^ (same major) and ~ (same major.minor)", () => {
    expect(semVerOperator(["1.9.0", "^", "1.0.0"])).toBe(true);
    expect(semVerOperator(["1.2.7-rc.1", "~", "1.2.0"])).toBe(true);
    expect(semVerOperator(["1.3.0", "~", "1.2.0"])).toBe(false);
  });
});
