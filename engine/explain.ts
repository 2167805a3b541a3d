/**
 * Explains one flag's evaluation: walks the flag's JSON Logic the way the compiled rule runs it
 * and records every step — which `if` branch was taken, which `and`/`or` operands were
 * evaluated, which shared rule (`$ref`, a segment) matched, where a unit fell in a `fractional`
 * split — and reaches the same answer as `compileFlagSet(...).evaluate` (proved over the
 * engine's testdata and generated contexts in explain.test.ts).
 *
 * Control flow (`if`/`?:`, `and`/`or`, `!`/`!!`, `$ref`, `experiment`) is interpreted here;
 * every other operation (comparisons, `in`, `sem_ver`, arithmetic, `fractional`'s value…) is a
 * leaf, compiled with the same compiler as the rule, so its semantics cannot drift. A rule that
 * fails at build time fails here too. For debuggers only: nothing here runs on the hot path.
 */
import { isEmptyTargeting } from "./flagd-format.ts";
import { bucketOf } from "./logic/operators/fractional.ts";
import { compileJsonLogic } from "./logic/compile.ts";
import type { CompiledLogic, CompileLogicOptions } from "./logic/types.ts";
import { truthy } from "./logic/values.ts";
import { murmur3Utf8 } from "./murmur3.ts";
import type { EvaluationContext, FlagDefinition, FlagSetDefinition, JsonValue, ResolutionErrorCode, ResolutionReason } from "./types.ts";

/** Options for {@link explainFlag}; pass what the flag set was compiled with. */
export interface ExplainOptions {
  /** Clock in milliseconds, for `$flagd.timestamp` (default Date.now). */
  now?: () => number;
  /** Vane's extension operators (`regex_match`, `experiment`). */
  extensions?: boolean;
}

/** Where a unit fell in a `fractional` split. */
export interface BucketTrace {
  /** The string hashed. */
  readonly bucketingValue: string;
  readonly bucket: number;
  readonly totalWeight: number;
  /** The entry whose range holds the bucket. */
  readonly variant: unknown;
}

/** One evaluated operation. */
export interface TraceNode {
  /** Issue-style path: `flags.<key>.targeting.if[0]`, `$evaluators.<name>.and[1]`. */
  readonly path: string;
  /** The operator, or "value" for a literal. */
  readonly op: string;
  /** Its position among its parent's operands (for `if`: 0 = first condition, 1 = its branch…). */
  readonly index: number;
  /** Leaves (operations not broken down): the expression. */
  expression?: JsonValue;
  /** What it returned; undefined when it failed. */
  result?: unknown;
  truthy: boolean;
  /** `if`/`?:`: the operand returned, or -1 for null (no else). */
  branch?: number;
  /** `$ref`: the shared rule. */
  ref?: string;
  /** Leaves: the context values they read (variable name → value; absent variables are null). */
  variables?: Record<string, unknown>;
  /** `fractional`: the split. */
  bucket?: BucketTrace;
  /** `experiment`: the experiment whose assignment this is. */
  experimentId?: string;
  /** Set when this operation failed the evaluation. */
  error?: string;
  /** The operands that were evaluated, in order. */
  readonly children: TraceNode[];
}

/** A flag's evaluation with how it was reached. */
export interface FlagExplanation {
  readonly reason: ResolutionReason;
  readonly variant?: string;
  readonly value?: unknown;
  readonly errorCode?: ResolutionErrorCode;
  readonly errorMessage?: string;
  readonly experimentId?: string;
  /** The targeting as evaluated; absent without targeting (static, disabled, not found). */
  readonly trace?: TraceNode;
}

interface Walk {
  readonly data: EvaluationContext;
  readonly compile: CompileLogicOptions;
  /** Set by an `experiment` operator whose expression named a variant. */
  experimentId?: string;
}

/** Raised to stop the walk where the compiled rule would have thrown. */
class WalkFailed extends Error {}

const isPlainObject = (v: unknown): v is Record<string, JsonValue> => typeof v === "object" && v !== null && !Array.isArray(v);

// Leaves compiled once per (expression object, flag, options): a flag set version's JSON objects
// are immutable and live as long as the version does.
const leafCache = new WeakMap<object, Map<string, { options: CompileLogicOptions; compiled: CompiledLogic }>>();

function compiledLeaf(logic: JsonValue, path: string, w: Walk): CompiledLogic {
  if (typeof logic !== "object" || logic === null) return compileJsonLogic(logic, path, w.compile);
  let byFlag = leafCache.get(logic);
  if (!byFlag) leafCache.set(logic, (byFlag = new Map()));
  const hit = byFlag.get(w.compile.flagKey);
  const o = w.compile;
  if (hit && hit.options.now === o.now && hit.options.extensions === o.extensions && hit.options.evaluators === o.evaluators) return hit.compiled;
  const compiled = compileJsonLogic(logic, path, o);
  byFlag.set(o.flagKey, { options: o, compiled });
  return compiled;
}

/** Explains how `key` evaluates for `context` in the flag set `def`. */
export function explainFlag(def: FlagSetDefinition, key: string, context?: EvaluationContext, options: ExplainOptions = {}): FlagExplanation {
  const found = findFlag(def, key);
  if (!found) return { reason: "ERROR", errorCode: "FLAG_NOT_FOUND", errorMessage: `flag "${key}" not found` };
  const { flag, path } = found;
  if (flag.state === "DISABLED") return { reason: "DISABLED" };
  const defaultVariant = flag.defaultVariant ?? null;
  const fallback = (reason: "STATIC" | "DEFAULT"): FlagExplanation =>
    defaultVariant === null ? { reason: "DEFAULT" } : { reason, variant: defaultVariant, value: flag.variants[defaultVariant] };
  if (isEmptyTargeting(flag.targeting)) return fallback("STATIC");

  const evaluators = isPlainObject(def.$evaluators) ? def.$evaluators : {};
  const compile: CompileLogicOptions = { flagKey: key, now: options.now, evaluators, extensions: options.extensions ?? false };
  const targeting = flag.targeting as JsonValue;
  const at = `${path}.targeting`;
  const failed = (message: string, trace?: TraceNode): FlagExplanation => ({
    reason: "ERROR",
    errorCode: "PARSE_ERROR",
    errorMessage: `targeting of flag "${key}" could not be evaluated: ${message}`,
    ...(trace ? { trace } : {}),
  });
  const whole = compiledLeaf(targeting, at, { data: {}, compile });
  if (whole.buildError !== undefined)
    return failed(whole.buildError, { path: at, op: opOf(targeting), index: 0, truthy: false, error: whole.buildError, children: [] });

  const w: Walk = { data: context ?? {}, compile };
  const root = node(at, targeting, 0);
  try {
    walk(targeting, root, w);
  } catch (e) {
    if (!(e instanceof WalkFailed)) throw e;
    return failed(e.message, root);
  }
  const experimentId = w.experimentId;
  const result = root.result;
  if (result === null || result === undefined) return { ...fallback("DEFAULT"), trace: root };
  let name: string;
  if (typeof result === "string") name = result;
  else if (typeof result === "boolean") name = result ? "true" : "false";
  else if (typeof result === "number") name = String(result);
  else
    return {
      reason: "ERROR",
      errorCode: "GENERAL",
      errorMessage: `targeting of flag "${key}" returned a ${Array.isArray(result) ? "array" : "object"}, not a variant name`,
      trace: root,
    };
  if (!Object.hasOwn(flag.variants, name)) {
    return {
      reason: "ERROR",
      errorCode: "GENERAL",
      errorMessage: `targeting of flag "${key}" returned "${name}", which is not one of its variants`,
      trace: root,
    };
  }
  return { reason: "TARGETING_MATCH", variant: name, value: flag.variants[name], ...(experimentId !== undefined ? { experimentId } : {}), trace: root };
}

function findFlag(def: FlagSetDefinition, key: string): { flag: FlagDefinition; path: string } | undefined {
  if (Array.isArray(def.flags)) {
    const i = def.flags.findIndex((f) => f.key === key);
    return i < 0 ? undefined : { flag: def.flags[i], path: `flags[${i}]` };
  }
  return Object.hasOwn(def.flags, key) ? { flag: def.flags[key], path: `flags.${key}` } : undefined;
}

function opOf(logic: JsonValue): string {
  if (isPlainObject(logic)) {
    const keys = Object.keys(logic);
    if (keys.length === 1) return keys[0];
  }
  return "value";
}

function node(path: string, logic: JsonValue, index: number): TraceNode {
  return { path, op: opOf(logic), index, truthy: false, children: [] };
}

/** Evaluates `logic` into `n` (result, truthiness, children); throws WalkFailed where the rule fails. */
function walk(logic: JsonValue, n: TraceNode, w: Walk): unknown {
  const v = evaluate(logic, n, w);
  n.result = v;
  n.truthy = truthy(v);
  return v;
}

function child(parent: TraceNode, logic: JsonValue, path: string, index: number, w: Walk): unknown {
  const c = node(path, logic, index);
  parent.children.push(c);
  return walk(logic, c, w);
}

function evaluate(logic: JsonValue, n: TraceNode, w: Walk): unknown {
  if (!isPlainObject(logic)) return leaf(logic, n, w);
  const keys = Object.keys(logic);
  if (keys.length !== 1) return leaf(logic, n, w);
  const op = keys[0];
  const raw = logic[op];
  const at = `${n.path}.${op}`;
  if (op === "$ref" && typeof raw === "string" && Object.hasOwn(w.compile.evaluators ?? {}, raw)) {
    n.ref = raw;
    return child(n, w.compile.evaluators![raw], `$evaluators.${raw}`, 0, w);
  }
  if ((op === "if" || op === "?:") && Array.isArray(raw)) {
    if (raw.length === 0) {
      n.branch = -1;
      return null;
    }
    if (raw.length === 1) {
      n.branch = 0;
      return child(n, raw[0], `${at}[0]`, 0, w);
    }
    const last = raw.length % 2 === 0 ? raw.length : raw.length - 1;
    for (let i = 0; i < last; i += 2) {
      if (truthy(child(n, raw[i], `${at}[${i}]`, i, w))) {
        n.branch = i + 1;
        return child(n, raw[i + 1], `${at}[${i + 1}]`, i + 1, w);
      }
    }
    if (last === raw.length) {
      n.branch = -1;
      return null;
    }
    n.branch = last;
    return child(n, raw[last], `${at}[${last}]`, last, w);
  }
  if ((op === "and" || op === "or") && Array.isArray(raw)) {
    if (raw.length === 0) return null;
    const wantTruthy = op === "or";
    let v: unknown = null;
    for (let i = 0; i < raw.length; i++) {
      v = child(n, raw[i], `${at}[${i}]`, i, w);
      if (truthy(v) === wantTruthy) return v;
    }
    return v;
  }
  if (op === "!" || op === "!!") {
    let v: unknown;
    if (Array.isArray(raw)) v = raw.length === 0 ? undefined : child(n, raw[0], `${at}[0]`, 0, w);
    else v = child(n, raw, at, 0, w);
    return op === "!" ? !truthy(v) : truthy(v);
  }
  if (op === "experiment" && w.compile.extensions && Array.isArray(raw) && raw.length === 2 && typeof raw[0] === "string" && raw[0] !== "") {
    const v = child(n, raw[1], `${at}[1]`, 1, w);
    if (v !== null && v !== undefined) {
      w.experimentId = raw[0];
      n.experimentId = raw[0];
    }
    return v;
  }
  const v = leaf(logic, n, w);
  if (op === "fractional" && v !== null && v !== undefined) {
    const bucket = fractionalBucket(raw, at, w);
    if (bucket) n.bucket = bucket;
  }
  return v;
}

/** An operation evaluated by the compiled code, with the context values it reads. */
function leaf(logic: JsonValue, n: TraceNode, w: Walk): unknown {
  if (typeof logic !== "object" || logic === null) return logic;
  n.expression = logic;
  const names = variablesOf(logic);
  if (names.length > 0) {
    n.variables = {};
    for (const name of names) {
      try {
        n.variables[name] = compiledLeaf({ var: name }, n.path, w).evaluate(w.data);
      } catch {
        // A variable lookup does not fail; nothing to report if it somehow does.
      }
    }
  }
  try {
    return compiledLeaf(logic, n.path, w).evaluate(w.data);
  } catch (e) {
    n.error = e instanceof Error ? e.message : String(e);
    throw new WalkFailed(n.error);
  }
}

const ITERATORS = new Set(["map", "filter", "reduce", "all", "none", "some"]);

/** Names of the context variables an expression reads at top level (not inside iterators). */
function variablesOf(logic: JsonValue): string[] {
  const out = new Set<string>();
  const visit = (x: JsonValue) => {
    if (Array.isArray(x)) return x.forEach(visit);
    if (!isPlainObject(x)) return;
    const keys = Object.keys(x);
    if (keys.length !== 1) return;
    const op = keys[0];
    const raw = x[op];
    if (op === "var") {
      const name = Array.isArray(raw) ? raw[0] : raw;
      if ((typeof name === "string" && name !== "") || typeof name === "number") out.add(String(name));
      else if (isPlainObject(name) || Array.isArray(name)) visit(name);
      return;
    }
    if (ITERATORS.has(op) && Array.isArray(raw)) return visit(raw[0] ?? null);
    visit(raw);
  };
  visit(logic);
  return [...out];
}

/** Where the unit fell in a `fractional` that returned an entry (for the explanation only). */
function fractionalBucket(raw: JsonValue, path: string, w: Walk): BucketTrace | undefined {
  let args: unknown;
  try {
    args = compiledLeaf(raw, path, w).evaluate(w.data);
  } catch {
    return undefined;
  }
  if (!Array.isArray(args)) args = [args];
  const list = args as unknown[];
  const first = list[0];
  const start = typeof first === "string" || first === null || first === undefined ? 1 : 0;
  const entries: { variant: unknown; weight: number }[] = [];
  for (const e of list.slice(start)) {
    if (!Array.isArray(e) || e.length === 0 || e.length > 2) return undefined;
    const weight = e.length === 2 ? e[1] : 1;
    if (typeof weight !== "number" || !Number.isInteger(weight)) return undefined;
    entries.push({ variant: e[0] ?? null, weight: Math.max(0, weight) });
  }
  const total = entries.reduce((s, e) => s + e.weight, 0);
  if (total === 0) return undefined;
  let value: string;
  if (typeof first === "string") value = first;
  else {
    const tk = w.data.targetingKey;
    if (typeof tk !== "string" || tk === "") return undefined;
    value = w.compile.flagKey + tk;
  }
  const bucket = bucketOf(murmur3Utf8(value), total);
  let sum = 0;
  for (const e of entries) {
    sum += e.weight;
    if (sum > bucket) return { bucketingValue: value, bucket, totalWeight: total, variant: e.variant };
  }
  return undefined;
}
