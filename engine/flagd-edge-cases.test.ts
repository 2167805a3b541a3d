/**
 * A flagd file with problems flagd only reports when the flag is evaluated: loaded as flagd loads
 * it (`asFlagd`), every other flag keeps working and each broken flag evaluates as flagd's does.
 * Writers that validate first (the flags service) still refuse the file, with paths.
 */
import { readFileSync } from "node:fs";
import { describe, expect, it } from "vitest";
import { compileFlagSet, FlagSetError, parseFlagdJson } from "./index.ts";

const text = readFileSync(new URL("./testdata/flagd-file/edge-cases.json", import.meta.url), "utf8");

describe("a flagd file with evaluation-time problems", () => {
  const set = compileFlagSet(parseFlagdJson(text, { asFlagd: true }));

  it("is refused whole by strict validation, with a path per problem", () => {
    const err = (() => {
      try {
        parseFlagdJson(text);
      } catch (e) {
        return e;
      }
    })() as FlagSetError;
    expect(err).toBeInstanceOf(FlagSetError);
    const paths = err.issues.map((i) => i.path);
    expect(paths).toEqual(
      expect.arrayContaining([
        "flags.rule-names-ghost-variant.targeting.if[1]",
        "flags.unknown-operator.targeting.if[0].regex_like",
        "flags.semver-unknown-comparison.targeting.sem_ver[1]",
        "flags.semver-two-args.targeting.sem_ver",
        "flags.starts-with-one-arg.targeting.starts_with",
        "flags.split-names-ghost-variant.targeting.fractional[1][0]",
        "flags.mixed-variant-types.variants.label",
        "flags.max-of-nothing.targeting.max",
        "flags.nested-metadata.metadata.owner",
      ]),
    );
    expect(err.issues.every((i) => i.atEvaluation)).toBe(true);
  });

  it("loads as flagd loads it, and the healthy flag is unaffected", () => {
    expect(set.evaluate("healthy", {}, "boolean")).toMatchObject({ value: true, variant: "on", reason: "STATIC" });
    const all = set.evaluateAll({ targetingKey: "u-1" });
    expect(all.size).toBe(11);
    expect(all.get("healthy")).toMatchObject({ value: true, reason: "STATIC" });
  });

  it("a rule naming a variant that does not exist: GENERAL for the contexts that reach it", () => {
    expect(set.evaluate("rule-names-ghost-variant", { tier: "gold" }, "string")).toMatchObject({ reason: "ERROR", errorCode: "GENERAL" });
    expect(set.evaluate("rule-names-ghost-variant", { tier: "silver" }, "string")).toMatchObject({ value: "basic", reason: "TARGETING_MATCH" });
  });

  it("an unknown JSON Logic operator: PARSE_ERROR", () => {
    expect(set.evaluate("unknown-operator", { email: "a@example.com" }, "boolean")).toMatchObject({ reason: "ERROR", errorCode: "PARSE_ERROR" });
    expect(set.evaluate("unknown-operator", {}, "boolean")).toMatchObject({ reason: "ERROR", errorCode: "PARSE_ERROR" });
  });

  it("a $ref cycle: PARSE_ERROR", () => {
    expect(set.evaluate("cyclic-reference", { vip: true }, "boolean")).toMatchObject({ reason: "ERROR", errorCode: "PARSE_ERROR" });
  });

  it.each(["semver-unknown-comparison", "semver-two-args"])("%s: sem_ver answers null, so the default variant (DEFAULT)", (key) => {
    expect(set.evaluate(key, { appVersion: "2.1.0" }, "string")).toMatchObject({ value: "unknown", variant: "fallback", reason: "DEFAULT" });
  });

  it("starts_with with one argument answers null, so the default variant (DEFAULT)", () => {
    expect(set.evaluate("starts-with-one-arg", { email: "a@example.com" }, "integer")).toMatchObject({ value: -1, variant: "fallback", reason: "DEFAULT" });
  });

  it("a fractional bucket naming no variant: GENERAL in that bucket, the other bucket matches", () => {
    const outcomes = new Set<string>();
    for (let i = 0; i < 200; i++) {
      const r = set.evaluate("split-names-ghost-variant", { targetingKey: `user-${i}` }, "string");
      outcomes.add(r.reason === "ERROR" ? `ERROR/${r.errorCode}` : `${r.reason}/${r.variant}`);
    }
    expect([...outcomes].sort()).toEqual(["ERROR/GENERAL", "TARGETING_MATCH/red"]);
  });

  it("variants of mixed types: each variant has its own type", () => {
    expect(set.evaluate("mixed-variant-types", {}, "boolean")).toMatchObject({ value: true, variant: "on", reason: "TARGETING_MATCH" });
    expect(set.evaluate("mixed-variant-types", { wantsLabel: true }, "string")).toMatchObject({ value: "shown as text", variant: "label" });
    expect(set.evaluate("mixed-variant-types", { wantsLabel: true }, "boolean")).toMatchObject({ reason: "ERROR", errorCode: "TYPE_MISMATCH" });
  });

  it("max of nothing is null, so the default variant (DEFAULT)", () => {
    expect(set.evaluate("max-of-nothing", {}, "number")).toMatchObject({ value: 1, variant: "small", reason: "DEFAULT" });
  });

  it("metadata that is not a primitive is left out; the flag evaluates", () => {
    const r = set.evaluate("nested-metadata", {}, "boolean");
    expect(r).toMatchObject({ value: false, reason: "STATIC" });
    expect(r.metadata).toEqual({ tier: 2 });
  });

  it("still refuses a default variant that is not a variant, and invalid JSON", () => {
    const bad = {
      flags: {
        f: { state: "ENABLED", variants: { on: true }, defaultVariant: "maybe" },
        g: { state: "ENABLED", variants: { on: true }, defaultVariant: "on" },
      },
    };
    expect(() => parseFlagdJson(JSON.stringify(bad), { asFlagd: true })).toThrow(/flags\.f\.defaultVariant/);
    expect(() => parseFlagdJson("{ nope", { asFlagd: true })).toThrow(FlagSetError);
  });
});
