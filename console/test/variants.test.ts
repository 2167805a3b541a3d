/** The new-flag form's typed variants, without a browser. */
import { describe, expect, it } from "vitest";
import { defaultVariants, parseVariants } from "../src/variants.ts";

describe("typed variants", () => {
  it("parses each type's values", () => {
    expect(parseVariants("boolean", defaultVariants("boolean")).variants).toEqual([
      { key: "on", value: true },
      { key: "off", value: false },
    ]);
    expect(parseVariants("number", [{ key: "a", value: "2.5" }]).variants).toEqual([{ key: "a", value: 2.5 }]);
    expect(parseVariants("object", [{ key: "a", value: '{"x": [1]}' }]).variants).toEqual([{ key: "a", value: { x: [1] } }]);
    expect(parseVariants("string", [{ key: "a", value: "42" }]).variants).toEqual([{ key: "a", value: "42" }]);
    for (const t of ["boolean", "string", "number", "object"] as const) expect(parseVariants(t, defaultVariants(t)).problems.size).toBe(0);
  });

  it("names each problem at its row", () => {
    const { problems } = parseVariants("object", [
      { key: "ok", value: "{}" },
      { key: "ok", value: "[1]" },
      { key: "-bad", value: "{oops" },
    ]);
    expect(Object.fromEntries(problems)).toEqual({
      "1-key": '"ok" is used twice',
      "1-value": "must be a JSON object: {…}",
      "2-key": "letters, digits, _ . - (up to 64), starting with a letter or digit",
      "2-value": expect.stringMatching(/^not JSON: /),
    });
    expect(parseVariants("number", [{ key: "n", value: "ten" }]).problems.get("0-value")).toBe("not a number");
    expect(parseVariants("string", []).problems.get("list")).toBe("a flag needs at least one variant");
  });
});
