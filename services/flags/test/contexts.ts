/**
 * Evaluation contexts for equivalence tests: deterministic, varied (missing, null and wrongly typed
 * attributes, non-ASCII keys), plus contexts that land exactly on the bucket boundaries of every
 * `fractional` in a flag set. Test code only.
 */
import { bucketOf, type FlagSetDefinition, type JsonValue, murmur3Utf8 } from "#engine";

/** mulberry32: small and deterministic, so failures reproduce. */
export function rng(seed: number): () => number {
  return () => {
    seed = (seed + 0x6d2b79f5) | 0;
    let t = Math.imul(seed ^ (seed >>> 15), 1 | seed);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** `count` generated contexts. */
export function generateContexts(count: number, seed: number): Record<string, unknown>[] {
  const r = rng(seed);
  const pick = <T>(xs: readonly T[]): T => xs[Math.floor(r() * xs.length)];
  const out: Record<string, unknown>[] = [];
  const emails = ["ann@example.com", "beta.bob@acme.io", "carl@acme.com", "dora@gmail.com", "éva@example.com", "x@EXAMPLE.com", "beta.zoë@acme.com"];
  const versions = ["1.2.3", "v2.1.3", "2.0.0", "2.1.0", "2.9.9", "3.0.0-rc.1", "3.0.0", "3.1.0", "bad", "1", "2.1", "1.2.3+b"];
  for (let i = 0; i < count; i++) {
    const ctx: Record<string, unknown> = {};
    const set = (k: string, p: number, f: () => unknown) => {
      if (r() < p) ctx[k] = f();
    };
    set("targetingKey", 0.9, () => pick([`user-${Math.floor(r() * 1e6)}`, `user-${Math.floor(r() * 10)}`, "", "üser-ñ", "🚀-x", "用户-1", 0]));
    set("email", 0.8, () => (r() < 0.1 ? null : pick(emails)));
    set("version", 0.7, () => (r() < 0.9 ? pick(versions) : 2));
    set("age", 0.8, () => (r() < 0.85 ? Math.floor(r() * 90) : pick(["30", "x", null, true])));
    set("plan", 0.7, () => pick(["pro", "free", "team", 5]));
    set("country", 0.8, () => pick(["de", "fr", "us", "ca", "mx", "jp"]));
    set("verified", 0.6, () => r() < 0.5);
    set("trial", 0.6, () => pick([true, false, 0, 1, "", "yes"]));
    set("score", 0.6, () => Math.floor(r() * 30));
    set("locale", 0.6, () => pick(["en-US", "en-GB", "fr-FR", "de"]));
    set("group", 0.6, () => pick(["a", "b", "c"]));
    set("platform", 0.6, () => pick(["ios", "android", "web"]));
    set("tier", 0.6, () => pick(["gold", "silver"]));
    set("region", 0.7, () => pick(["eu", "us"]));
    set("rollout", 0.7, () => Math.floor(r() * 101));
    set("n", 0.6, () => Math.floor(r() * 700) - 100);
    set("roles", 0.5, () => ["admin", "editor", "viewer"].filter(() => r() < 0.4));
    set("cart", 0.4, () => ({ total: Math.floor(r() * 200) }));
    set("company", 0.3, () => ({ address: { city: pick(["Paris", "Berlin"]) } }));
    set("prefs", 0.4, () => pick([{ theme: "dark" }, { theme: null }, {}]));
    set("scores", 0.4, () => [Math.floor(r() * 60)]);
    set("extraCountries", 0.3, () => pick([["jp"], []]));
    out.push(ctx);
  }
  return out;
}

const isObject = (v: unknown): v is Record<string, JsonValue> => typeof v === "object" && v !== null && !Array.isArray(v);

/** Every `fractional` argument list under `v` (after `$ref` substitution). */
function fractionals(v: JsonValue, evaluators: Record<string, JsonValue>, out: JsonValue[][] = [], depth = 0): JsonValue[][] {
  if (depth > 50) return out;
  if (Array.isArray(v)) for (const x of v) fractionals(x, evaluators, out, depth + 1);
  else if (isObject(v)) {
    if (typeof v.$ref === "string" && v.$ref in evaluators) return fractionals(evaluators[v.$ref], evaluators, out, depth + 1);
    for (const [k, x] of Object.entries(v)) {
      if (k === "fractional" && Array.isArray(x)) out.push(x);
      fractionals(x, evaluators, out, depth + 1);
    }
  }
  return out;
}

/**
 * Contexts whose bucketing value falls exactly on, and just below, each cumulative weight of each
 * literal `fractional` (default bucketing, or `cat` of a string/flag key and one attribute).
 */
export function boundaryContexts(def: FlagSetDefinition, base: Record<string, unknown> = {}, tries = 40_000): Record<string, unknown>[] {
  const flags = Array.isArray(def.flags) ? def.flags.map((f) => [f.key ?? "", f] as const) : Object.entries(def.flags);
  const out: Record<string, unknown>[] = [];
  for (const [key, f] of flags) {
    for (const args of fractionals(f.targeting ?? null, (def.$evaluators ?? {}) as Record<string, JsonValue>)) {
      let prefix = key;
      let attribute = "targetingKey";
      let buckets = args;
      if (!Array.isArray(args[0])) {
        const cat = isObject(args[0]) && Array.isArray(args[0].cat) ? (args[0].cat as JsonValue[]) : undefined;
        if (!cat || cat.length !== 2 || !isObject(cat[1]) || typeof cat[1].var !== "string") continue;
        if (typeof cat[0] === "string") prefix = cat[0];
        else if (!(isObject(cat[0]) && cat[0].var === "$flagd.flagKey")) continue;
        attribute = cat[1].var;
        buckets = args.slice(1);
      }
      const weights = buckets.map((b) => (Array.isArray(b) ? (b.length > 1 ? Math.max(0, Number(b[1])) : 1) : NaN));
      if (weights.some((w) => !Number.isInteger(w))) continue;
      const total = weights.reduce((a, b) => a + b, 0);
      if (total <= 0 || total > 10_000) continue;
      const wanted = new Set<number>([0, total - 1]);
      let sum = 0;
      for (const w of weights) {
        sum += w;
        if (sum > 0) wanted.add(sum - 1);
        if (sum < total) wanted.add(sum);
      }
      for (let i = 0; i < tries && wanted.size > 0; i++) {
        const value = `b${i}`;
        const bucket = bucketOf(murmur3Utf8(prefix + value), total);
        if (wanted.delete(bucket)) out.push({ ...base, targetingKey: attribute === "targetingKey" ? value : `tk-${i}`, [attribute]: value });
      }
    }
  }
  return out;
}
