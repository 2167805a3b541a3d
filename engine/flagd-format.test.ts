import { readFileSync } from "node:fs";
import { describe, expect, it } from "vitest";
import { parseFlagdJson, toFlagdJson, validateFlagSet } from "./flagd-format.ts";
import { compileFlagSet } from "./flag-set.ts";
import { FlagSetError } from "./types.ts";

const paths = (def: unknown) => validateFlagSet(def).map((i) => i.path);
const flag = (extra: Record<string, unknown>) => ({ flags: { f: { state: "ENABLED", variants: { on: true, off: false }, defaultVariant: "on", ...extra } } });

describe("validateFlagSet", () => {
  it("accepts the testdata", () => {
    for (const f of ["static.json", "targeting.json", "fractional.json", "evaluators.json", "flags-array.json"]) {
      expect(validateFlagSet(JSON.parse(readFileSync(new URL(`./testdata/${f}`, import.meta.url), "utf8"))), f).toEqual([]);
    }
  });
  it("reports shape errors with exact paths", () => {
    expect(paths(null)).toEqual([""]);
    expect(paths({})).toEqual(["flags"]);
    expect(paths(flag({ state: "on" }))).toEqual(["flags.f.state"]);
    expect(paths(flag({ variants: {} }))).toEqual(["flags.f.variants"]);
    expect(paths(flag({ defaultVariant: "maybe" }))).toEqual(["flags.f.defaultVariant"]);
    expect(paths(flag({ defaultVariant: 3 }))).toEqual(["flags.f.defaultVariant"]);
    expect(paths(flag({ metadata: { owner: { team: "x" } } }))).toEqual(["flags.f.metadata.owner"]);
    expect(paths({ ...flag({}), metadata: { version: [1] } })).toEqual(["metadata.version"]);
  });
  it("reports variants of mixed types and unsupported values", () => {
    expect(validateFlagSet(flag({ variants: { on: true, off: "false" } }))).toEqual([
      { path: "flags.f.variants.off", message: 'variants of mixed types: "off" is a string, "on" a boolean', atEvaluation: true },
    ]);
    expect(paths(flag({ variants: { on: true, off: null } }))).toEqual(["flags.f.variants.off"]);
    expect(paths(flag({ variants: { on: [1], off: [2] }, defaultVariant: "on" }))).toEqual(["flags.f.variants.on", "flags.f.variants.off"]);
  });
  it("reports targeting results that name no variant, where statically known", () => {
    expect(paths(flag({ targeting: { if: [{ var: "x" }, "on", "maybe"] } }))).toEqual(["flags.f.targeting.if[2]"]);
    expect(
      paths(
        flag({
          targeting: {
            if: [
              { var: "x" },
              {
                fractional: [
                  ["on", 1],
                  ["nope", 1],
                ],
              },
              null,
            ],
          },
        }),
      ),
    ).toEqual(["flags.f.targeting.if[1].fractional[1][0]"]);
    expect(paths(flag({ targeting: { if: [{ var: "x" }, true, null] }, variants: { true: 1, false: 0 }, defaultVariant: "false" }))).toEqual([]);
    expect(paths(flag({ targeting: { var: "x" } }))).toEqual([]);
  });
  it("reports unknown operators, bad fractional weights and unknown $ref inside targeting", () => {
    expect(paths(flag({ targeting: { if: [{ "=~": [{ var: "x" }, "a"] }, "on", null] } }))).toEqual(["flags.f.targeting.if[0].=~"]);
    expect(
      paths(
        flag({
          targeting: {
            if: [
              true,
              {
                fractional: [
                  ["on", 50],
                  ["off", "50"],
                ],
              },
            ],
          },
        }),
      ),
    ).toEqual(["flags.f.targeting.if[1].fractional[1][1]"]);
    expect(paths(flag({ targeting: { if: [{ $ref: "ghost" }, "on", null] } }))).toEqual(["flags.f.targeting.if[0].$ref"]);
  });
  it("checks the array form: keys required and unique", () => {
    const v = { state: "ENABLED", variants: { a: 1 }, defaultVariant: "a" };
    expect(paths({ flags: [{ ...v, key: "a" }, { ...v }, { ...v, key: "a" }] })).toEqual(["flags[1].key", "flags[2].key"]);
    expect(paths({ flags: [{ ...v, key: "a", state: "x" }] })).toEqual(["flags[0].state"]);
  });
  it("checks unused $evaluators at their own path", () => {
    expect(paths({ ...flag({}), $evaluators: { unused: { bogus: [] } } })).toEqual(["$evaluators.unused.bogus"]);
  });
});

describe("parseFlagdJson / toFlagdJson", () => {
  it("throws FlagSetError for invalid JSON and invalid flag sets", () => {
    expect(() => parseFlagdJson("{nope")).toThrow(FlagSetError);
    expect(() => parseFlagdJson(JSON.stringify(flag({ state: "x" })))).toThrow(/flags\.f\.state/);
  });
  it("exports canonical JSON that round-trips to the same evaluations", () => {
    const text = readFileSync(new URL("./testdata/flags-array.json", import.meta.url), "utf8");
    const def = parseFlagdJson(text);
    const out = toFlagdJson(def);
    const back = parseFlagdJson(out);
    expect(Array.isArray(back.flags)).toBe(false);
    expect(Object.keys(back.flags)).toEqual(["array-bool", "array-disabled", "array-targeted"]);
    expect(toFlagdJson(back)).toBe(out);
    const a = compileFlagSet(def);
    const b = compileFlagSet(back);
    for (const ctx of [{}, { group: "b" }]) for (const key of a.keys) expect(b.evaluate(key, ctx)).toEqual(a.evaluate(key, ctx));
  });
  it("keeps $ref and $evaluators in the export", () => {
    const text = readFileSync(new URL("./testdata/evaluators.json", import.meta.url), "utf8");
    const out = JSON.parse(toFlagdJson(parseFlagdJson(text)));
    expect(out.$evaluators.isStaff).toBeDefined();
    expect(out.flags["staff-feature"].targeting.if[0]).toEqual({ $ref: "isStaff" });
  });
});
