/**
 * What saving an environment's configuration will change, in words, shown before the save.
 */
import { describeRuleChanges, type RuleDraft } from "./rules.ts";

export interface EnvState {
  enabled: boolean;
  defaultVariant: string;
  /** The targeting rules, in order. */
  rules: RuleDraft[];
}

export function describeChanges(before: EnvState, after: EnvState): string[] {
  const out: string[] = [];
  if (before.enabled !== after.enabled) out.push(after.enabled ? "Turn the flag ON" : "Turn the flag OFF");
  if (before.defaultVariant !== after.defaultVariant) out.push(`Default variant: ${before.defaultVariant || "(none)"} → ${after.defaultVariant || "(none)"}`);
  out.push(...describeRuleChanges(before.rules, after.rules));
  return out;
}

const short = (v: unknown): string => {
  if (Array.isArray(v)) return `${v.length} item${v.length === 1 ? "" : "s"}`;
  if (v === undefined || v === null || v === "") return "(none)";
  const s = typeof v === "object" ? JSON.stringify(v) : String(v);
  return s.length > 60 ? `${s.slice(0, 57)}…` : s;
};

const IDENTITY = new Set(["id", "projectId", "environmentId", "flagKey"]);
const isEmpty = (v: unknown) =>
  v === undefined || v === null || v === "" || (Array.isArray(v) && v.length === 0) || (typeof v === "object" && Object.keys(v as object).length === 0);

/** An audit entry's before and after as "field: before → after" lines (top-level fields that differ). */
export function auditDiff(before: unknown, after: unknown): string[] {
  const obj = (v: unknown) => (v && typeof v === "object" && !Array.isArray(v) ? (v as Record<string, unknown>) : {});
  const b = obj(before);
  const a = obj(after);
  const keys = [...new Set([...Object.keys(b), ...Object.keys(a)])].filter((k) => !["version", "updateTime", "createTime"].includes(k));
  const created = before === null || before === undefined;
  const out: string[] = [];
  for (const k of keys.sort()) {
    if (JSON.stringify(b[k]) === JSON.stringify(a[k])) continue;
    // A creation lists what it set, not the ids the entry's heading already names, nor empty fields.
    if (created && (IDENTITY.has(k) || isEmpty(a[k]))) continue;
    if (!(k in b)) out.push(`${k}: set to ${short(a[k])}`);
    else if (!(k in a)) out.push(`${k}: removed (was ${short(b[k])})`);
    else out.push(`${k}: ${short(b[k])} → ${short(a[k])}`);
  }
  if (created) return ["created", ...out];
  return out;
}
