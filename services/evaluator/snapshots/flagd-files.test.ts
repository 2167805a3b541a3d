/** Merging flag files as flagd does: the later file wins per key; each flag keeps its own file's rules and metadata. */
import { describe, expect, it } from "vitest";
import { compileFlagSet, type FlagSetDefinition } from "#engine";
import { mergeFlagSets } from "./flagd-files.ts";

const flag = (value: string, targeting?: unknown) => ({
  state: "ENABLED" as const,
  variants: { yes: value, no: "no" },
  defaultVariant: "no",
  ...(targeting ? { targeting: targeting as never } : {}),
});

describe("mergeFlagSets", () => {
  const first: FlagSetDefinition = {
    metadata: { flagSetId: "one", team: "web" },
    // Rules that refer to each other, by names the second file uses too.
    $evaluators: { adult: { ">=": [{ var: "age" }, 18] }, target: { and: [{ $ref: "adult" }, { "==": [{ var: "country" }, "de"] }] } },
    flags: { a: flag("a1", { if: [{ $ref: "target" }, "yes", null] }), both: flag("from-one") },
  };
  const second: FlagSetDefinition = {
    metadata: { flagSetId: "two" },
    $evaluators: { target: { "==": [{ var: "country" }, "fr"] } },
    flags: [{ key: "both", ...flag("from-two", { if: [{ $ref: "target" }, "yes", null] }), metadata: { owner: "ann" } }],
  };
  const merged = compileFlagSet(mergeFlagSets([first, second]));

  it("takes a key's definition from the file listed last", () => {
    expect(merged.evaluate("both", { country: "fr" })).toMatchObject({ value: "from-two", reason: "TARGETING_MATCH" });
    expect(merged.evaluate("a", { age: 20, country: "de" })).toMatchObject({ value: "a1" });
  });

  it("keeps each file's shared rules apart, even under the same name", () => {
    expect(merged.evaluate("a", { age: 20, country: "fr" }).value).toBe("no");
    expect(merged.evaluate("both", { age: 20, country: "de" }).value).toBe("no");
  });

  it("gives each flag its own file's metadata under its own", () => {
    expect(merged.evaluate("a").metadata).toEqual({ flagSetId: "one", team: "web" });
    expect(merged.evaluate("both").metadata).toEqual({ flagSetId: "two", owner: "ann" });
  });
});
