/**
 * The stable JSON shapes of `-o json|yaml`: protobuf messages turned into plain objects with
 * enum names in lower case without their prefix, timestamps as ISO strings, int64 as numbers.
 */
import { timestampDate, type Timestamp } from "@bufbuild/protobuf/wkt";

/** `FlagType.BOOLEAN` → `boolean` (protoc-gen-es already drops the enum's prefix). */
export function enumName(e: Record<string, string | number>, value: number): string {
  const name = e[value];
  return typeof name === "string" ? name.toLowerCase() : String(value);
}

/** `boolean` → the enum's number; undefined when unknown. */
export function enumValue(e: Record<string, string | number>, name: string): number | undefined {
  for (const v of Object.values(e)) if (typeof v === "number" && enumName(e, v) === name.toLowerCase()) return v;
  return undefined;
}

export function iso(t: Timestamp | undefined): string | null {
  return t ? timestampDate(t).toISOString() : null;
}

/** A short relative age for tables: 5s, 3m, 2h, 4d. */
export function age(t: Timestamp | undefined): string {
  if (!t) return "-";
  const s = Math.max(0, Math.round((Date.now() - timestampDate(t).getTime()) / 1000));
  if (s < 60) return `${s}s`;
  if (s < 3600) return `${Math.floor(s / 60)}m`;
  if (s < 86400) return `${Math.floor(s / 3600)}h`;
  return `${Math.floor(s / 86400)}d`;
}
