/**
 * The entity tag of a bulk evaluation (OFREP bulk and vane.evaluation.v1 EvaluateAll). The answer depends only on the environment's
 * version, what the caller may see, the context and the clock — and only the flags whose rules
 * read the clock can change while the rest stay put. So the tag names the first three and the
 * answers of those few flags: revalidating an unchanged answer evaluates the clock's flags alone.
 * The tag names the answer exactly, so it also keys the cache of answers (bulk-cache.ts); matching
 * an If-None-Match value against it is lib/server/entity-tags.ts.
 */
import { createHash } from "node:crypto";
import type { EvaluationContext, Resolution } from "#engine";
import type { EnvironmentState } from "./snapshots/store.ts";

/** The tag of the bulk answer for `context`; `evaluate` evaluates one flag without side effects. */
export function bulkTag(state: EnvironmentState, clientOnly: boolean, context: EvaluationContext, evaluate: (key: string) => Resolution): string {
  const clock = clockFlags(state)
    .filter((key) => !clientOnly || state.clientVisible.has(key))
    .map((key) => {
      const r = evaluate(key);
      return [key, r.value, r.variant, r.reason];
    });
  return `"v${state.version}.${state.commitTimeMs}-${clientOnly ? "c" : "a"}-${hash(canonical(context))}${clock.length ? `-${hash(JSON.stringify(clock))}` : ""}"`;
}

const clockReaders = new WeakMap<EnvironmentState, string[]>();
/** The flags whose rules read the time of evaluation (`$flagd.timestamp`), directly or through a shared rule. */
export function clockFlags(state: EnvironmentState): string[] {
  let keys = clockReaders.get(state);
  if (keys === undefined) {
    const def = state.evaluationDefinition;
    const reads = (rule: unknown) => JSON.stringify(rule ?? null).includes("$flagd.timestamp");
    const sharedReads = Object.values(def.$evaluators ?? {}).some(reads);
    const flags: [string, { targeting?: unknown }][] = Array.isArray(def.flags) ? def.flags.map((f) => [f.key ?? "", f]) : Object.entries(def.flags);
    keys = flags.filter(([, f]) => reads(f.targeting) || (sharedReads && JSON.stringify(f.targeting ?? null).includes('"$ref"'))).map(([k]) => k);
    clockReaders.set(state, keys);
  }
  return keys;
}

const hash = (text: string) => createHash("sha256").update(text).digest("base64url").slice(0, 22);

/** JSON with object keys sorted: the same context gives the same text whatever the order of its keys. */
function canonical(v: unknown): string {
  if (Array.isArray(v)) return `[${v.map(canonical).join(",")}]`;
  if (v !== null && typeof v === "object") {
    const o = v as Record<string, unknown>;
    return `{${Object.keys(o)
      .sort()
      .map((k) => `${JSON.stringify(k)}:${canonical(o[k])}`)
      .join(",")}}`;
  }
  return JSON.stringify(v) ?? "null";
}
