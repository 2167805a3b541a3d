/** A context as a string equal for equal contexts, whatever the order of their attributes. */
export function contextKey(context: Readonly<Record<string, unknown>>): string {
  return JSON.stringify(sorted(context));
}

function sorted(v: unknown): unknown {
  if (Array.isArray(v)) return v.map(sorted);
  if (v === null || typeof v !== "object") return v;
  const out: Record<string, unknown> = {};
  for (const k of Object.keys(v).sort()) out[k] = sorted((v as Record<string, unknown>)[k]);
  return out;
}
