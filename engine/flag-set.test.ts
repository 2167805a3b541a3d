import { readFileSync, readdirSync } from "node:fs";
import { describe, expect, it } from "vitest";
import { compileFlagSet } from "./flag-set.ts";
import { FlagSetError, type FlagSetDefinition } from "./types.ts";

const load = (name: string) => JSON.parse(readFileSync(new URL(`./testdata/${name}`, import.meta.url), "utf8")) as FlagSetDefinition;

describe("compileFlagSet: resolutions", () => {
  const set = compileFlagSet(load("static.json"));

  it("resolves static flags with reason STATIC, reusing one frozen object", () => {
    const a = set.evaluate("bool-static", { targetingKey: "x" }, "boolean");
    expect(a).toEqual({ value: true, variant: "on", reason: "STATIC", metadata: { flagSetId: "static-set", version: "7" } });
    expect(set.evaluate("bool-static", {}, "boolean")).toBe(a);
    expect(Object.isFrozen(a)).toBe(true);
    expect(set.evaluate("empty-targeting").reason).toBe("STATIC");
  });

  it("overlays flag metadata on the flag set's", () => {
    expect(set.evaluate("object-static").metadata).toEqual({ flagSetId: "static-set", version: "flag-v2", owner: "growth" });
    expect(set.metadata).toEqual({ flagSetId: "static-set", version: "7" });
  });

  it("checks the requested type; integer truncates a float64", () => {
    expect(set.evaluate("string-static", {}, "boolean")).toMatchObject({ reason: "ERROR", errorCode: "TYPE_MISMATCH" });
    expect(set.evaluate("string-static", {}, "boolean").value).toBeUndefined();
    expect(set.evaluate("number-static", {}, "number").value).toBe(99.9);
    expect(set.evaluate("number-static", {}, "integer").value).toBe(99);
    expect(set.evaluate("integer-static", {}, "integer").value).toBe(-7);
    expect(set.evaluate("integer-static", {}, "number").value).toBe(-7.8);
    expect(set.evaluate("object-static", {}, "object").value).toEqual({ size: 1, tags: ["a"] });
    expect(set.evaluate("object-static", {}, "integer").errorCode).toBe("TYPE_MISMATCH");
    expect(set.evaluate("bool-static", {}, "string").errorCode).toBe("TYPE_MISMATCH");
  });

  it("returns frozen variant values, so shared results cannot be mutated", () => {
    const v = set.evaluate("object-static", {}, "object").value as { tags: string[] };
    expect(Object.isFrozen(v) && Object.isFrozen(v.tags)).toBe(true);
  });

  it("resolves a disabled flag successfully with reason DISABLED and no value", () => {
    expect(set.evaluate("disabled-flag", {}, "boolean")).toEqual({ reason: "DISABLED", metadata: { flagSetId: "static-set", version: "7" } });
  });

  it("defers to the caller's code default when defaultVariant is null or absent", () => {
    for (const key of ["code-default", "code-default-absent"]) {
      const r = set.evaluate(key, {}, "boolean");
      expect(r.reason).toBe("DEFAULT");
      expect("value" in r || "variant" in r).toBe(false);
    }
    expect(set.evaluate("code-default-targeted", { tier: "silver" }, "boolean")).toEqual({ reason: "DEFAULT", metadata: set.metadata });
    expect(set.evaluate("code-default-targeted", { tier: "gold" }, "boolean")).toMatchObject({ value: true, variant: "on", reason: "TARGETING_MATCH" });
  });

  it("reports an unknown key as FLAG_NOT_FOUND", () => {
    expect(set.evaluate("nope")).toMatchObject({ reason: "ERROR", errorCode: "FLAG_NOT_FOUND", metadata: set.metadata });
    expect(set.has("nope")).toBe(false);
    expect(set.has("bool-static")).toBe(true);
  });

  it("describes flags", () => {
    expect(set.flag("code-default-targeted")).toMatchObject({ state: "ENABLED", defaultVariant: null, hasTargeting: true });
    expect(set.flag("bool-static")?.hasTargeting).toBe(false);
    expect(set.keys).toContain("disabled-flag");
  });
});

describe("compileFlagSet: targeting", () => {
  const set = compileFlagSet(load("targeting.json"));

  it("returns TARGETING_MATCH for a named variant and DEFAULT for null", () => {
    expect(set.evaluate("email-rule", { email: "a@example.com" })).toMatchObject({ value: "staff", variant: "internal", reason: "TARGETING_MATCH" });
    expect(set.evaluate("email-rule", { email: "a@else.com" })).toMatchObject({ value: "public", variant: "external", reason: "DEFAULT" });
  });

  it("reads a boolean result as the variant name 'true'/'false'", () => {
    expect(set.evaluate("bool-result", { age: 30 })).toMatchObject({ variant: "true", value: "enabled", reason: "TARGETING_MATCH" });
    expect(set.evaluate("bool-result", { age: 3 })).toMatchObject({ variant: "false", reason: "TARGETING_MATCH" });
  });

  it("is GENERAL when targeting names an unknown variant, PARSE_ERROR when it cannot be evaluated", () => {
    expect(set.evaluate("var-default", { prefs: { theme: "purple" } })).toMatchObject({ reason: "ERROR", errorCode: "GENERAL" });
    expect(set.evaluate("var-default", { prefs: { theme: "purple" } }).value).toBeUndefined();
    expect(set.evaluate("arithmetic", { n: "abc" })).toMatchObject({ reason: "ERROR", errorCode: "PARSE_ERROR" });
    expect(set.evaluate("cat-substr", { locale: 5 })).toMatchObject({ reason: "ERROR", errorCode: "PARSE_ERROR" });
  });

  it("injects $flagd.flagKey and a timestamp from the clock", () => {
    expect(set.evaluate("flagd-props", {}).variant).toBe("self");
    const past = compileFlagSet(load("targeting.json"), { now: () => -5000 });
    expect(past.evaluate("flagd-props", {}).variant).toBe("recent");
  });

  it("evaluates all flags, in definition order", () => {
    const all = set.evaluateAll({ email: "a@example.com", targetingKey: "user-1" });
    expect([...all.keys()]).toEqual(set.keys);
    expect(all.get("email-rule")?.variant).toBe("internal");
    expect(all.get("targeting-key")?.variant).toBe("vip");
  });
});

describe("compileFlagSet: $ref, array form, disabled in evaluateAll", () => {
  it("substitutes shared rules", () => {
    const set = compileFlagSet(load("evaluators.json"));
    expect(set.evaluate("staff-feature", { email: "x@example.com" }).variant).toBe("on");
    expect(set.evaluate("staff-or-beta", { targetingKey: "user-7" }).variant).toBe("beta");
    expect(set.evaluate("mobile-recent", { platform: "ios", version: "2.1.0" }).variant).toBe("new-ui");
    expect(set.evaluate("mobile-recent", { platform: "web", version: "2.1.0" }).reason).toBe("DEFAULT");
  });

  it("accepts flags as an array of items with a key", () => {
    const set = compileFlagSet(load("flags-array.json"));
    expect(set.keys).toEqual(["array-bool", "array-targeted", "array-disabled"]);
    expect(set.evaluate("array-targeted", { group: "b" })).toMatchObject({ variant: "b", metadata: { flagSetId: "array-set", version: "3", team: "core" } });
    const all = set.evaluateAll({});
    expect(all.get("array-disabled")).toMatchObject({ reason: "DISABLED" });
    expect(all.get("array-bool")).toMatchObject({ value: true, reason: "STATIC" });
  });

  it("compiles every testdata file", () => {
    const dir = new URL("./testdata/", import.meta.url);
    for (const f of readdirSync(dir).filter((n) => n.endsWith(".json"))) expect(() => compileFlagSet(load(f)), f).not.toThrow();
  });

  it("throws FlagSetError with every issue", () => {
    const bad = { flags: { f: { state: "ON", variants: { a: 1 }, defaultVariant: "b" } } } as unknown as FlagSetDefinition;
    const err = (() => {
      try {
        compileFlagSet(bad);
      } catch (e) {
        return e;
      }
    })() as FlagSetError;
    expect(err).toBeInstanceOf(FlagSetError);
    expect(err.issues.map((i) => i.path)).toEqual(["flags.f.state", "flags.f.defaultVariant"]);
  });
});

describe("compileFlagSet: strict, for writers", () => {
  const def: FlagSetDefinition = {
    flags: {
      broken: { state: "ENABLED", variants: { on: true, off: false }, defaultVariant: "off", targeting: { if: [{ bogus_op: [1] }, "on", "nope"] } },
      fine: { state: "ENABLED", variants: { on: true, off: false }, defaultVariant: "on" },
    },
  };
  it("refuses what flagd would only fail per evaluation, naming each path", () => {
    let err: unknown;
    try {
      compileFlagSet(def, { strict: true });
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(FlagSetError);
    expect((err as FlagSetError).issues.map((i) => i.path)).toEqual(expect.arrayContaining([expect.stringContaining("flags.broken.targeting")]));
  });
  it("without it, fails only the broken flag, as flagd serves it", () => {
    const set = compileFlagSet(def);
    expect(set.evaluate("broken", {})).toMatchObject({ reason: "ERROR", errorCode: "PARSE_ERROR" });
    expect(set.evaluate("fine", {})).toMatchObject({ value: true, reason: "STATIC" });
  });
});
