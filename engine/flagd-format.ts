/**
 * flagd's flag-definition format: parsing JSON text, validating with exact paths, and a canonical
 * export. Validation is stricter than flagd's own loader on purpose: a mistake it would only
 * surface as an evaluation error for some contexts (an unknown operator, a variant name that does
 * not exist, an unknown `$ref`) is reported here, before the flag set is published. Such issues
 * carry `atEvaluation`: flagd loads them, and so does the engine, failing (or nulling) only the
 * affected flag's evaluations the way flagd does.
 */
import { FlagSetError, type FlagDefinition, type FlagSetDefinition, type FlagSetIssue, type JsonValue, type MetadataValue } from "./types.ts";
import { compileJsonLogic } from "./logic/compile.ts";
import type { CompiledLogic } from "./logic/types.ts";

/** The JSON schema flagd publishes for this format; written by {@link toFlagdJson}. */
export const FLAGD_SCHEMA_URL = "https://flagd.dev/schema/v0/flags.json";

/** A flag after normalization (map and array forms alike), with where it was found. */
export interface NormalizedFlag {
  readonly key: string;
  /** Issue path prefix: `flags.<key>` (map form) or `flags[<i>]` (array form). */
  readonly path: string;
  readonly definition: FlagDefinition;
}

/** Result of checking a flag set: the issues, and the compiled targeting of each flag that has one. */
export interface CheckedFlagSet {
  readonly issues: FlagSetIssue[];
  readonly flags: NormalizedFlag[];
  readonly evaluators: Readonly<Record<string, JsonValue>>;
  readonly metadata: Readonly<Record<string, MetadataValue>>;
  /** Each flag's own metadata, without the entries that are not string, number or boolean. */
  readonly flagMetadata: ReadonlyMap<string, Readonly<Record<string, MetadataValue>>>;
  readonly targeting: ReadonlyMap<string, CompiledLogic>;
}

const isObject = (v: unknown): v is Record<string, unknown> => typeof v === "object" && v !== null && !Array.isArray(v);

/** Targeting that means "none": absent, null or `{}`. */
export function isEmptyTargeting(t: unknown): boolean {
  return t === undefined || t === null || (isObject(t) && Object.keys(t).length === 0);
}

/** The kind a variant value belongs to; flagd requires all variants of a flag to share one. */
export function variantKind(v: unknown): "boolean" | "string" | "number" | "object" | null {
  if (typeof v === "boolean") return "boolean";
  if (typeof v === "string") return "string";
  if (typeof v === "number") return Number.isFinite(v) ? "number" : null;
  if (isObject(v)) return "object";
  return null;
}

/**
 * Checks a flag set and compiles its targeting. Shared by {@link validateFlagSet} and
 * `compileFlagSet`, so a flag set is analysed once.
 */
export function checkFlagSet(def: unknown, now?: () => number, extensions = false): CheckedFlagSet {
  const issues: FlagSetIssue[] = [];
  const flags: NormalizedFlag[] = [];
  const targeting = new Map<string, CompiledLogic>();
  const flagMetadata = new Map<string, Record<string, MetadataValue>>();
  const push = (path: string, message: string) => issues.push({ path, message });
  // What flagd loads anyway (its schema check only warns) and the engine handles per evaluation.
  const warn = (path: string, message: string) => issues.push({ path, message, atEvaluation: true });

  if (!isObject(def)) {
    push("", "a flag set must be a JSON object");
    return { issues, flags, evaluators: {}, metadata: {}, flagMetadata, targeting };
  }
  const metadata = checkMetadata(def.metadata, "metadata", warn);
  let evaluators: Record<string, JsonValue> = {};
  if (def.$evaluators !== undefined) {
    if (isObject(def.$evaluators)) evaluators = def.$evaluators as Record<string, JsonValue>;
    else push("$evaluators", "$evaluators must be an object of named rules");
  }

  if (Array.isArray(def.flags)) {
    const seen = new Map<string, number>();
    def.flags.forEach((f, i) => {
      const path = `flags[${i}]`;
      if (!isObject(f)) return push(path, "a flag must be an object");
      if (typeof f.key !== "string" || f.key === "") return push(`${path}.key`, "a flag in the array form needs a non-empty string key");
      if (seen.has(f.key)) return push(`${path}.key`, `duplicate flag key "${f.key}" (also flags[${seen.get(f.key)}])`);
      seen.set(f.key, i);
      flags.push({ key: f.key, path, definition: f as unknown as FlagDefinition });
    });
  } else if (isObject(def.flags)) {
    for (const [key, f] of Object.entries(def.flags)) {
      const path = `flags.${key}`;
      if (key === "") push(path, "a flag key must not be empty");
      else if (!isObject(f)) push(path, "a flag must be an object");
      else flags.push({ key, path, definition: f as unknown as FlagDefinition });
    }
  } else {
    push("flags", "flags must be an object keyed by flag key, or an array of flags with a key");
  }

  for (const { key, path, definition: f } of flags) {
    const raw = f as unknown as Record<string, unknown>;
    if (raw.state !== "ENABLED" && raw.state !== "DISABLED") push(`${path}.state`, 'state must be "ENABLED" or "DISABLED"');
    let variantNames = new Set<string>();
    if (!isObject(raw.variants) || Object.keys(raw.variants).length === 0) {
      push(`${path}.variants`, "variants must be a non-empty object of name to value");
    } else {
      variantNames = new Set(Object.keys(raw.variants));
      let firstKind: string | null = null;
      let firstName = "";
      for (const [name, value] of Object.entries(raw.variants)) {
        const kind = variantKind(value);
        if (kind === null) {
          push(`${path}.variants.${name}`, "a variant value must be a boolean, string, finite number or object");
        } else if (firstKind === null) {
          firstKind = kind;
          firstName = name;
        } else if (kind !== firstKind) {
          // flagd types each variant on its own: asking for another type is TYPE_MISMATCH.
          warn(`${path}.variants.${name}`, `variants of mixed types: "${name}" is a ${kind}, "${firstName}" a ${firstKind}`);
        }
      }
    }
    const dv = raw.defaultVariant;
    if (dv !== undefined && dv !== null) {
      if (typeof dv !== "string") push(`${path}.defaultVariant`, "defaultVariant must be a variant name or null");
      else if (variantNames.size > 0 && !variantNames.has(dv))
        push(`${path}.defaultVariant`, `unknown variant "${dv}"; variants are ${[...variantNames].join(", ")}`);
    }
    // Resolution metadata is OpenFeature's (primitives only): other entries are left out.
    flagMetadata.set(key, checkMetadata(raw.metadata, `${path}.metadata`, warn));
    if (!isEmptyTargeting(raw.targeting)) {
      const compiled = compileJsonLogic(raw.targeting as JsonValue, `${path}.targeting`, { flagKey: key, now, evaluators, extensions });
      issues.push(...compiled.issues);
      if (variantNames.size > 0) {
        for (const lit of compiled.resultLiterals) {
          const name = String(lit.value);
          // Evaluating to it is flagd's GENERAL error, for the contexts that get there.
          if (!variantNames.has(name))
            warn(lit.path, `targeting of flag "${key}" can return "${name}", which is not one of its variants (${[...variantNames].join(", ")})`);
        }
      }
      targeting.set(key, compiled);
    }
  }

  // Rules no flag uses are still checked, so they are correct when a flag starts using them.
  for (const name of Object.keys(evaluators)) {
    issues.push(...compileJsonLogic({ $ref: name }, `$evaluators.${name}`, { flagKey: "", now, evaluators, extensions }).issues);
  }
  return { issues: dedupe(issues), flags, evaluators, metadata, flagMetadata, targeting };
}

function dedupe(issues: FlagSetIssue[]): FlagSetIssue[] {
  const seen = new Set<string>();
  return issues.filter((i) => {
    const k = `${i.path}\u0000${i.message}`;
    if (seen.has(k)) return false;
    seen.add(k);
    return true;
  });
}

function checkMetadata(m: unknown, path: string, push: (path: string, message: string) => void): Record<string, MetadataValue> {
  if (m === undefined || m === null) return {};
  if (!isObject(m)) {
    push(path, "metadata must be an object");
    return {};
  }
  const out: Record<string, MetadataValue> = {};
  for (const [k, v] of Object.entries(m)) {
    if (typeof v === "string" || typeof v === "boolean" || (typeof v === "number" && Number.isFinite(v))) out[k] = v;
    else push(`${path}.${k}`, "a metadata value must be a string, number or boolean");
  }
  return out;
}

/** Every problem in a flag set, each with its exact path; empty when the flag set is valid. */
export function validateFlagSet(def: unknown, options: { extensions?: boolean } = {}): FlagSetIssue[] {
  return checkFlagSet(def, undefined, options.extensions).issues;
}

/**
 * Parses flagd JSON text and validates it; throws a {@link FlagSetError} listing every issue
 * (with `asFlagd`, only what flagd itself refuses to load: a default variant that is not a
 * variant, and shapes it cannot read at all; the rest fails only that flag's evaluations).
 */
export function parseFlagdJson(text: string, options: { asFlagd?: boolean } = {}): FlagSetDefinition {
  let def: unknown;
  try {
    def = JSON.parse(text);
  } catch (e) {
    throw new FlagSetError([{ path: "", message: `not valid JSON: ${(e as Error).message}` }]);
  }
  // asFlagd: accept what flagd itself loads (problems that only fail some evaluations).
  const issues = validateFlagSet(def).filter((i) => !(options.asFlagd && i.atEvaluation));
  if (issues.length > 0) throw new FlagSetError(issues);
  return def as FlagSetDefinition;
}

/**
 * Canonical flagd JSON: the map form of `flags`, flags sorted by key, fields in a fixed order,
 * two-space indentation. `$ref`s are kept, not expanded, so the output round-trips.
 */
export function toFlagdJson(def: FlagSetDefinition): string {
  const entries: [string, FlagDefinition][] = Array.isArray(def.flags) ? def.flags.map((f) => [f.key ?? "", f]) : Object.entries(def.flags);
  entries.sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
  const flags: Record<string, unknown> = {};
  for (const [key, f] of entries) {
    const out: Record<string, unknown> = { state: f.state, variants: f.variants, defaultVariant: f.defaultVariant ?? null };
    if (!isEmptyTargeting(f.targeting)) out.targeting = f.targeting;
    if (f.metadata !== undefined && Object.keys(f.metadata).length > 0) out.metadata = f.metadata;
    flags[key] = out;
  }
  const doc: Record<string, unknown> = { $schema: FLAGD_SCHEMA_URL, flags };
  if (def.$evaluators !== undefined && Object.keys(def.$evaluators).length > 0) doc.$evaluators = def.$evaluators;
  if (def.metadata !== undefined && Object.keys(def.metadata).length > 0) doc.metadata = def.metadata;
  return JSON.stringify(doc, null, 2) + "\n";
}
