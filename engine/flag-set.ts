/**
 * Compiles a flagd flag set once per version into per-flag evaluators. Every resolution a flag can
 * produce without an error is built and frozen up front, so evaluating allocates nothing on the
 * happy path: static flags return a shared object, targeted ones run their compiled rule and pick a
 * prebuilt resolution for the variant it names.
 */
import {
  FlagSetError,
  type EvaluationContext,
  type FlagSetDefinition,
  type FlagValueType,
  type JsonValue,
  type MetadataValue,
  type Resolution,
  type ResolutionErrorCode,
} from "./types.ts";
import { checkFlagSet, variantKind } from "./flagd-format.ts";
import type { CompiledLogic } from "./logic/types.ts";

/** Options for {@link compileFlagSet}. */
export interface CompileFlagSetOptions {
  /** Clock in milliseconds since the epoch, for `$flagd.timestamp` (default `Date.now`). */
  now?: () => number;
  /** Allow Vane's operators beyond flagd's (`regex_match`, `experiment`): for Vane snapshots only. */
  extensions?: boolean;
  /**
   * Refuse problems flagd would only report per evaluation (`atEvaluation` issues) too: for a
   * writer checking a configuration before it publishes it. Without it, such a flag compiles and
   * fails (or falls back) on its own, as flagd serves it, while the other flags keep working.
   */
  strict?: boolean;
}

/** What a compiled flag set tells about one flag. */
export interface FlagInfo {
  readonly key: string;
  readonly state: "ENABLED" | "DISABLED";
  readonly variants: Readonly<Record<string, JsonValue>>;
  /** null: the caller's code default. */
  readonly defaultVariant: string | null;
  /** The flag set's metadata overlaid with the flag's. */
  readonly metadata: Readonly<Record<string, MetadataValue>>;
  readonly hasTargeting: boolean;
}

/** A flag set compiled for evaluation; immutable, safe to share. */
export interface CompiledFlagSet {
  /** Flag keys in definition order. */
  readonly keys: readonly string[];
  /** The flag set's own metadata (`flagSetId`, `version`, …). */
  readonly metadata: Readonly<Record<string, MetadataValue>>;
  has(key: string): boolean;
  flag(key: string): FlagInfo | undefined;
  /**
   * Evaluates one flag. With a `type`, a variant of another type is a TYPE_MISMATCH error, and
   * `integer` truncates the (float64) value. The result is frozen and may be shared: never mutate.
   */
  evaluate(key: string, context?: EvaluationContext, type?: FlagValueType): Resolution;
  /**
   * Evaluates every flag, in definition order, each as its own type. Disabled flags are included
   * (reason DISABLED, no value), as are errors (reason ERROR): see docs/engine.md for how flagd's
   * bulk endpoints present them.
   */
  evaluateAll(context?: EvaluationContext): Map<string, Resolution>;
}

type Kind = "boolean" | "string" | "number" | "object";

interface VariantEntry {
  readonly name: string;
  readonly kind: Kind;
  readonly match: Resolution;
  readonly matchInt: Resolution | null;
}

/** The same variant assigned by an experiment: prebuilt per experiment id, once. */
type AssignedEntries = Map<string, Map<string, VariantEntry>>;

type Run = (context: EvaluationContext, type: FlagValueType | undefined) => Resolution;

const EMPTY: EvaluationContext = Object.freeze({});

function deepFreeze<T>(v: T): T {
  if (typeof v === "object" && v !== null && !Object.isFrozen(v)) {
    Object.freeze(v);
    for (const x of Object.values(v)) deepFreeze(x);
  }
  return v;
}

function structuredCopy<T>(v: T): T {
  return v === undefined ? v : (JSON.parse(JSON.stringify(v)) as T);
}

/** Compiles a flag set; throws a {@link FlagSetError} listing every issue when it is invalid. */
export function compileFlagSet(def: FlagSetDefinition, options: CompileFlagSetOptions = {}): CompiledFlagSet {
  const checked = checkFlagSet(def, options.now, options.extensions);
  const blocking = options.strict ? checked.issues : checked.issues.filter((i) => !i.atEvaluation);
  if (blocking.length > 0) throw new FlagSetError(blocking);

  const setMetadata = Object.freeze({ ...checked.metadata });
  const runs = new Map<string, Run>();
  const infos = new Map<string, FlagInfo>();
  for (const { key, definition } of checked.flags) {
    const metadata = Object.freeze({ ...setMetadata, ...checked.flagMetadata.get(key) });
    const variants = deepFreeze(structuredCopy(definition.variants));
    const defaultVariant = definition.defaultVariant ?? null;
    const logic = checked.targeting.get(key);
    infos.set(key, Object.freeze({ key, state: definition.state, variants, defaultVariant, metadata, hasTargeting: logic !== undefined }));
    runs.set(key, compileFlag(key, definition.state, variants, defaultVariant, metadata, logic));
  }
  const keys = Object.freeze([...runs.keys()]);

  return Object.freeze({
    keys,
    metadata: setMetadata,
    has: (key: string) => runs.has(key),
    flag: (key: string) => infos.get(key),
    evaluate(key: string, context?: EvaluationContext, type?: FlagValueType): Resolution {
      const run = runs.get(key);
      if (run === undefined) return notFound(key, setMetadata);
      return run(context ?? EMPTY, type);
    },
    evaluateAll(context?: EvaluationContext): Map<string, Resolution> {
      const ctx = context ?? EMPTY;
      const out = new Map<string, Resolution>();
      for (const [key, run] of runs) out.set(key, run(ctx, undefined));
      return out;
    },
  });
}

function notFound(key: string, metadata: Readonly<Record<string, MetadataValue>>): Resolution {
  return Object.freeze({ reason: "ERROR", errorCode: "FLAG_NOT_FOUND", errorMessage: `flag "${key}" not found`, metadata });
}

function errorResolution(code: ResolutionErrorCode, message: string, metadata: Readonly<Record<string, MetadataValue>>): Resolution {
  return Object.freeze({ reason: "ERROR", errorCode: code, errorMessage: message, metadata });
}

function compileFlag(
  key: string,
  state: "ENABLED" | "DISABLED",
  variants: Readonly<Record<string, JsonValue>>,
  defaultVariant: string | null,
  metadata: Readonly<Record<string, MetadataValue>>,
  logic: CompiledLogic | undefined,
): Run {
  if (state === "DISABLED") {
    // flagd: a disabled flag evaluates successfully and defers to the caller's code default.
    const disabled: Resolution = Object.freeze({ reason: "DISABLED", metadata });
    return () => disabled;
  }

  const make = (name: string, reason: "STATIC" | "TARGETING_MATCH" | "DEFAULT", experimentId?: string): VariantEntry => {
    const value = variants[name];
    const kind = variantKind(value) as Kind;
    const extra = experimentId === undefined ? {} : { experimentId };
    return {
      name,
      kind,
      match: Object.freeze({ value, variant: name, reason, metadata, ...extra }),
      matchInt: kind === "number" ? Object.freeze({ value: Math.trunc(value as number), variant: name, reason, metadata, ...extra }) : null,
    };
  };
  const codeDefault: Resolution = Object.freeze({ reason: "DEFAULT", metadata });
  const mismatches = new Map<FlagValueType, Resolution>();
  const typed = (entry: VariantEntry, type: FlagValueType | undefined): Resolution => {
    if (type === undefined) return entry.match;
    if (type === "integer") return entry.matchInt ?? mismatch(entry, type);
    return entry.kind === type ? entry.match : mismatch(entry, type);
  };
  const mismatch = (entry: VariantEntry, type: FlagValueType): Resolution => {
    let r = mismatches.get(type);
    if (r === undefined) {
      r = errorResolution("TYPE_MISMATCH", `flag "${key}" is of type ${entry.kind}, not ${type}`, metadata);
      mismatches.set(type, r);
    }
    return r;
  };

  if (logic === undefined) {
    if (defaultVariant === null) return () => codeDefault;
    const entry = make(defaultVariant, "STATIC");
    const { match } = entry;
    return (_ctx, type) => (type === undefined || type === entry.kind ? match : typed(entry, type));
  }

  const byName = new Map<string, VariantEntry>();
  for (const name of Object.keys(variants)) byName.set(name, make(name, "TARGETING_MATCH"));
  const assigned: AssignedEntries = new Map();
  const assignedEntry = (experimentId: string, name: string): VariantEntry | undefined => {
    let entries = assigned.get(experimentId);
    if (entries === undefined) {
      entries = new Map(Object.keys(variants).map((n) => [n, make(n, "TARGETING_MATCH", experimentId)]));
      assigned.set(experimentId, entries);
    }
    return entries.get(name);
  };
  const fallback = defaultVariant === null ? null : make(defaultVariant, "DEFAULT");
  const evaluate = logic.evaluate;
  const failed = (e: unknown) =>
    errorResolution("PARSE_ERROR", `targeting of flag "${key}" could not be evaluated: ${e instanceof Error ? e.message : String(e)}`, metadata);

  // Only rules with an `experiment` operator have the slot; others skip the bookkeeping.
  const slot = logic.assignment;
  return (ctx, type) => {
    let result: unknown;
    if (slot !== undefined) slot.experimentId = undefined;
    try {
      result = evaluate(ctx);
    } catch (e) {
      return failed(e);
    }
    const experimentId = slot?.experimentId;
    if (result === null || result === undefined) return fallback === null ? codeDefault : typed(fallback, type);
    let name: string;
    if (typeof result === "string") name = result;
    else if (typeof result === "boolean") name = result ? "true" : "false";
    else if (typeof result === "number") name = String(result);
    else return errorResolution("GENERAL", `targeting of flag "${key}" returned a ${Array.isArray(result) ? "array" : "object"}, not a variant name`, metadata);
    const entry = experimentId === undefined ? byName.get(name) : assignedEntry(experimentId, name);
    if (entry === undefined) return errorResolution("GENERAL", `targeting of flag "${key}" returned "${name}", which is not one of its variants`, metadata);
    return typed(entry, type);
  };
}
