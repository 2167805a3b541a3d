/**
 * The new-flag form's variants: typed values as a person types them (text as is, numbers, JSON
 * objects), checked before anything is sent, each problem at its row.
 */
import type { JsonValue } from "@bufbuild/protobuf";

export type VariantType = "boolean" | "string" | "number" | "object";

export interface VariantRow {
  key: string;
  /** The value as typed (booleans: "true" / "false"). */
  value: string;
}

/** The variants a new flag of a type starts with. */
export function defaultVariants(type: VariantType): VariantRow[] {
  switch (type) {
    case "boolean":
      return [
        { key: "on", value: "true" },
        { key: "off", value: "false" },
      ];
    case "string":
      return [
        { key: "control", value: "control" },
        { key: "treatment", value: "treatment" },
      ];
    case "number":
      return [
        { key: "low", value: "10" },
        { key: "high", value: "20" },
      ];
    case "object":
      return [
        { key: "default", value: "{}" },
        { key: "new", value: '{"layout": "grid"}' },
      ];
  }
}

const KEY = /^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$/;

/** The rows as variants, or the problems by row index ("key" or "value"). */
export function parseVariants(
  type: VariantType,
  rows: readonly VariantRow[],
): { variants: { key: string; value: JsonValue }[]; problems: Map<string, string> } {
  const problems = new Map<string, string>();
  const seen = new Set<string>();
  if (rows.length === 0) problems.set("list", "a flag needs at least one variant");
  const variants = rows.map((r, i) => {
    const key = r.key.trim();
    if (!KEY.test(key)) problems.set(`${i}-key`, "letters, digits, _ . - (up to 64), starting with a letter or digit");
    else if (seen.has(key)) problems.set(`${i}-key`, `"${key}" is used twice`);
    seen.add(key);
    let value: JsonValue = r.value;
    if (type === "boolean") value = r.value === "true";
    else if (type === "number") {
      const n = Number(r.value);
      if (r.value.trim() === "" || !Number.isFinite(n)) problems.set(`${i}-value`, "not a number");
      value = n;
    } else if (type === "object") {
      try {
        value = JSON.parse(r.value) as JsonValue;
        if (typeof value !== "object" || value === null || Array.isArray(value)) problems.set(`${i}-value`, "must be a JSON object: {…}");
      } catch (err) {
        problems.set(`${i}-value`, `not JSON: ${(err as Error).message}`);
      }
    }
    return { key, value };
  });
  return { variants, problems };
}
