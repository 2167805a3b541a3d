/**
 * What an exposure carries for breakdowns: only the attributes the flag's experiment named (its
 * snapshot metadata), primitive values as text, bounded in count and length.
 */
import { describe, expect, it } from "vitest";
import { exposureDimensions } from "../exposure-dimensions.ts";

describe("exposureDimensions", () => {
  it("copies the named primitive attributes, cut to 64 characters, and nothing else", () => {
    const context = { targetingKey: "u1", country: "DE", age: 42, beta: true, email: "a@b.c", long: "x".repeat(80), nested: { a: 1 }, nan: NaN };
    expect(exposureDimensions({ experimentDimensions: "country,age,beta" }, context)).toEqual({ country: "DE", age: "42", beta: "true" });
    expect(exposureDimensions({ experimentDimensions: "long,nested,nan" }, context)).toEqual({ long: "x".repeat(64) });
    expect(exposureDimensions({ experimentDimensions: "country,age,beta,email" }, context)).toEqual({ country: "DE", age: "42", beta: "true" }); // at most 3
  });

  it("sends nothing when the flag names no dimension", () => {
    expect(exposureDimensions({ experimentId: "x" }, { targetingKey: "u1", country: "DE" })).toBeUndefined();
    expect(exposureDimensions({ experimentDimensions: "" }, { targetingKey: "u1" })).toBeUndefined();
  });
});
