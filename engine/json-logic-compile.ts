/* eslint-disable @typescript-eslint/no-explicit-any -- compiled closures read arbitrary JSON on the hot path */
/**
 * Compiles flagd targeting (JSON Logic plus `fractional`, `sem_ver`, `starts_with`, `ends_with`)
 * into closures, once per flag set version. Evaluating walks no tree and switches on no operator
 * name; it only calls the closures built here.
 *
 * Semantics follow json-logic-engine 5 as flagd-core (flagd's JS reference) drives it: its
 * truthiness (empty arrays and empty plain objects are falsy), its number coercion (arithmetic and
 * mixed-type comparisons on non-numeric input fail the evaluation), `var` returning the default
 * for null as well as missing values, and sub-expressions without variables being evaluated once at
 * build time (where a failure fails the whole rule).
 */
import type { EvaluationContext, FlagSetIssue, JsonValue } from "./types.ts";
import { createMurmur3Prefix, murmur3Utf8, murmur3Utf8Continue } from "./murmur3.ts";
import { MAX_TOTAL_WEIGHT, pickBucket } from "./fractional.ts";
import { SEMVER_OPERATORS, compareSemVer, parseSemVer, semVerOperator, type SemVer } from "./semver.ts";
import { compileRegex, MAX_REGEX_LENGTH, validRegexFlags, type CompiledRegex } from "./regex.ts";

/** A compiled expression: takes the data in scope (the context at top level, the element inside `map` & co). */
type Fn = (data: any) => unknown;

/** Raised when a rule cannot be evaluated for a context (e.g. arithmetic on a non-number). */
export class LogicError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "LogicError";
  }
}

/** Options for {@link compileJsonLogic}. */
export interface CompileLogicOptions {
  /** The flag's key: `$flagd.flagKey` and the default `fractional` bucketing prefix. */
  flagKey: string;
  /** Clock in milliseconds since the epoch, for `$flagd.timestamp`. */
  now?: () => number;
  /** Shared rules for `{"$ref": name}`. */
  evaluators?: Readonly<Record<string, JsonValue>>;
  /**
   * Enables Vane's operators beyond flagd's dialect ({@link EXTENSION_OPERATORS}): on for Vane's
   * own snapshots, off for flagd files, which must evaluate exactly as flagd would.
   */
  extensions?: boolean;
}

/**
 * Vane's operators beyond flagd's dialect:
 * - `{"regex_match": [value, "pattern", "flags"?]}`: true when the string value matches the
 *   (literal) pattern, compiled once with RE2 semantics (`regex.ts`) and the given flags (`i`,
 *   `m`, `s`); null when the value is not a string, like flagd's custom operators on bad input.
 * - `{"experiment": ["experimentId", expr]}`: evaluates `expr`; when it names a variant, the
 *   resolution records that the experiment assigned it (`Resolution.experimentId`), which is what
 *   makes an evaluation an exposure.
 */
export const EXTENSION_OPERATORS: ReadonlySet<string> = new Set(["regex_match", "experiment"]);

/**
 * The experiment whose `experiment` operator produced the last result. Evaluation is synchronous
 * and never re-entrant, so one slot (reset before each flag's rule runs) is enough and allocates
 * nothing.
 */
export const assignment = { experimentId: undefined as string | undefined };

/** A literal that targeting may return as a variant name, with where it sits. */
export interface ResultLiteral {
  readonly path: string;
  readonly value: string | number | boolean;
}

/** The output of {@link compileJsonLogic}. */
export interface CompiledLogic {
  /** Runs the rule for a context; throws {@link LogicError} (or a JS error) when it cannot be evaluated. */
  readonly evaluate: (context: EvaluationContext) => unknown;
  /** Structural problems: unknown operators, wrong argument shapes, invalid literals, unknown `$ref`s. */
  readonly issues: readonly FlagSetIssue[];
  /** Set when a variable-free sub-expression fails at build time; such a rule always fails. */
  readonly buildError?: string;
  /** Literals the rule can return, to check them against the flag's variants. */
  readonly resultLiterals: readonly ResultLiteral[];
}

/** Every operator the engine knows. */
export const OPERATORS: ReadonlySet<string> = new Set([
  "var",
  "missing",
  "missing_some",
  "if",
  "?:",
  "==",
  "===",
  "!=",
  "!==",
  "!",
  "!!",
  "or",
  "and",
  ">",
  ">=",
  "<",
  "<=",
  "max",
  "min",
  "+",
  "-",
  "*",
  "/",
  "%",
  "map",
  "filter",
  "reduce",
  "all",
  "none",
  "some",
  "merge",
  "in",
  "cat",
  "substr",
  "fractional",
  "sem_ver",
  "starts_with",
  "ends_with",
]);

const ITERATORS = new Set(["map", "filter", "reduce", "all", "none", "some"]);
const CUSTOM = new Set(["fractional", "sem_ver", "starts_with", "ends_with"]);
const LAZY = new Set(["if", "?:", "or", "and", "==", "===", "!=", "!==", ">", ">=", "<", "<=", ...ITERATORS]);

interface Scope {
  /** At the top of the rule (data is the evaluation context), not inside an iterator. */
  readonly top: boolean;
  /** Inside a sub-expression evaluated at build time (json-logic-engine then uses its interpreter). */
  readonly folding: boolean;
}

interface Node {
  readonly fn: Fn;
  /** Known at build time. */
  readonly isConst: boolean;
  readonly value?: unknown;
}

interface State {
  readonly flagKey: string;
  readonly extensions: boolean;
  readonly now: () => number;
  readonly evaluators: Readonly<Record<string, JsonValue>>;
  readonly issues: FlagSetIssue[];
  readonly refStack: string[];
  buildError?: string;
}

const constant = (value: unknown): Node => ({ fn: () => value, isConst: true, value });

/**
 * Throws a LogicError without capturing a stack trace: a rule that fails for a context fails on
 * every evaluation for it, and V8's stack capture would cost more than the evaluation.
 */
function fail(message: string): never {
  throw Object.create(LogicError.prototype, { message: { value: message, enumerable: false, writable: true, configurable: true } }) as LogicError;
}

/**
 * A rule flagd would load but cannot evaluate (jsonlogic reports an error, flagd answers
 * PARSE_ERROR): reported with `atEvaluation`, and the rule fails for every context.
 */
function failsAtEvaluation(state: State, path: string, message: string): Node {
  state.issues.push({ path, message, atEvaluation: true });
  state.buildError ??= message;
  return constant(null);
}

/** Compiles a JSON Logic rule. `path` prefixes the issue paths (e.g. `flags.my-flag.targeting`). */
export function compileJsonLogic(logic: JsonValue, path: string, options: CompileLogicOptions): CompiledLogic {
  const state: State = {
    flagKey: options.flagKey,
    extensions: options.extensions ?? false,
    now: options.now ?? Date.now,
    evaluators: options.evaluators ?? {},
    issues: [],
    refStack: [],
  };
  const node = compileNode(logic, path, { top: true, folding: false }, state);
  const resultLiterals: ResultLiteral[] = [];
  collectResultLiterals(logic, path, state, resultLiterals, []);
  const fn = node.fn;
  const buildError = state.buildError;
  return {
    evaluate: buildError !== undefined ? () => fail(buildError) : (context) => fn(context ?? {}),
    issues: dedupe(state.issues),
    buildError,
    resultLiterals,
  };
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

function isPlainObject(v: unknown): v is Record<string, JsonValue> {
  return typeof v === "object" && v !== null && !Array.isArray(v);
}

/** Resolves `{"$ref": name}`; returns the referenced rule and the path its issues are reported at. */
function deref(logic: JsonValue, path: string, state: State): { logic: JsonValue; path: string } | null | undefined {
  if (!isPlainObject(logic)) return undefined;
  const keys = Object.keys(logic);
  if (keys.length !== 1 || keys[0] !== "$ref") return undefined;
  const name = logic.$ref;
  if (typeof name !== "string" || !Object.hasOwn(state.evaluators, name)) {
    const message = `unknown $ref ${JSON.stringify(name)}: no such entry in $evaluators`;
    // flagd keeps the rule and fails its evaluation (PARSE_ERROR): so does the engine.
    state.issues.push({ path: `${path}.$ref`, message, atEvaluation: true });
    state.buildError ??= message;
    return null;
  }
  if (state.refStack.includes(name)) {
    // flagd substitutes references once, so a cycle leaves a `$ref` its JSON Logic cannot apply.
    failsAtEvaluation(state, `${path}.$ref`, `$ref cycle: ${[...state.refStack, name].join(" -> ")}`);
    return null;
  }
  return { logic: state.evaluators[name], path: `$evaluators.${name}` };
}

function withRef<T>(logic: JsonValue, state: State, run: () => T): T {
  const name = (logic as Record<string, JsonValue>).$ref as string;
  state.refStack.push(name);
  try {
    return run();
  } finally {
    state.refStack.pop();
  }
}

// ---------------------------------------------------------------------------------------------
// Determinism: json-logic-engine evaluates variable-free sub-expressions at build time. Knowing
// which ones it folds matters because its interpreter differs from its compiled code in a few
// places (e.g. `cat` skips nulls only when folded).

function isDeterministic(logic: JsonValue, insideIterator: boolean, state: State): boolean {
  if (Array.isArray(logic)) return logic.every((x) => isDeterministic(x, insideIterator, state));
  if (!isPlainObject(logic)) return true;
  const r = deref(logic, "", { ...state, issues: [] });
  if (r === null) return false;
  if (r !== undefined) return withRef(logic, state, () => isDeterministic(r.logic, insideIterator, state));
  const keys = Object.keys(logic);
  if (keys.length === 0) return true;
  const op = keys[0];
  if (keys.length > 1 || !OPERATORS.has(op)) return false;
  if (EXTENSION_OPERATORS.has(op)) return false;
  const args = logic[op];
  if (op === "var") return insideIterator && !String(args).includes("../../");
  if (op === "missing") return Array.isArray(args) && args.length === 0;
  if (op === "missing_some" || CUSTOM.has(op)) return false;
  if (ITERATORS.has(op)) {
    if (!Array.isArray(args)) return false;
    return isDeterministic(args[0] ?? null, insideIterator, state) && isDeterministic(args[1] ?? null, true, state);
  }
  return isDeterministic(args, insideIterator, state);
}

// ---------------------------------------------------------------------------------------------

function compileNode(logic: JsonValue, path: string, scope: Scope, state: State): Node {
  if (Array.isArray(logic)) {
    const items = logic.map((x, i) => compileNode(x, `${path}[${i}]`, scope, state));
    if (items.every((n) => n.isConst)) return constant(items.map((n) => n.value));
    const fns = items.map((n) => n.fn);
    return { fn: (d) => fns.map((f) => f(d)), isConst: false };
  }
  if (!isPlainObject(logic)) return constant(logic);

  const r = deref(logic, path, state);
  if (r === null) return constant(null);
  if (r !== undefined) return withRef(logic, state, () => compileNode(r.logic, r.path, scope, state));

  const keys = Object.keys(logic);
  if (keys.length === 0) return constant(logic);
  if (keys.length > 1) return failsAtEvaluation(state, path, `an operation must have exactly one key, found ${keys.length}: ${keys.join(", ")}`);
  const op = keys[0];
  if (!OPERATORS.has(op) && !(state.extensions && EXTENSION_OPERATORS.has(op))) return failsAtEvaluation(state, `${path}.${op}`, `unknown operator "${op}"`);

  // Fold variable-free sub-expressions, as json-logic-engine does at build time.
  if (!scope.folding && isDeterministic(logic, false, state)) {
    const issuesBefore = state.issues.length;
    const node = compileOperator(op, logic[op], `${path}.${op}`, { top: scope.top, folding: true }, state);
    if (state.issues.length > issuesBefore) return node;
    try {
      return constant(node.fn({}));
    } catch (e) {
      state.buildError ??= `rule fails for every context at ${path}: ${errorText(e)}`;
      return node;
    }
  }
  return compileOperator(op, logic[op], `${path}.${op}`, scope, state);
}

function errorText(e: unknown): string {
  if (e instanceof Error) return e.message;
  if (typeof e === "number" && Number.isNaN(e)) return "not a number";
  return String(e);
}

/** Arguments of an operator; non-lazy operators read a primitive argument `x` as `[x]`. */
function argList(op: string, raw: JsonValue): JsonValue[] | null {
  if (Array.isArray(raw)) return raw;
  if (!LAZY.has(op) && (raw === null || typeof raw !== "object")) return [raw];
  return null;
}

function compileArgs(args: JsonValue[], path: string, scope: Scope, state: State): Node[] {
  return args.map((a, i) => compileNode(a, `${path}[${i}]`, scope, state));
}

/** A single dynamic argument (an operation rather than an array): evaluated, then read as an array. */
function spread(node: Node): Fn {
  const f = node.fn;
  return (d) => {
    const v = f(d);
    return Array.isArray(v) ? v : [v];
  };
}

/** Evaluates all arguments into an array, whatever form they were written in. */
function argsFn(op: string, raw: JsonValue, path: string, scope: Scope, state: State): { fn: (d: any) => unknown[]; nodes: Node[] | null } {
  const list = argList(op, raw);
  if (list === null) {
    const n = compileNode(raw, path, scope, state);
    return { fn: spread(n) as (d: any) => unknown[], nodes: null };
  }
  const nodes = compileArgs(list, path, scope, state);
  const fns = nodes.map((n) => n.fn);
  if (nodes.every((n) => n.isConst)) {
    const values = nodes.map((n) => n.value);
    return { fn: () => values, nodes };
  }
  return { fn: (d) => fns.map((f) => f(d)), nodes };
}

function compileOperator(op: string, raw: JsonValue, path: string, scope: Scope, state: State): Node {
  const issue = issueFor(op, state, path);
  switch (op) {
    case "var":
      return compileVar(raw, path, scope, state);
    case "missing":
      return compileMissing(raw, path, scope, state);
    case "missing_some":
      return compileMissingSome(raw, path, scope, state, issue);
    case "if":
    case "?:":
      return compileIf(raw, path, scope, state, issue);
    case "or":
    case "and":
      return compileAndOr(op, raw, path, scope, state, issue);
    case "==":
    case "===":
    case "!=":
    case "!==":
    case "<":
    case "<=":
    case ">":
    case ">=":
      return compileComparison(op, raw, path, scope, state, issue);
    case "!":
    case "!!":
      return compileNot(op, raw, path, scope, state);
    case "+":
    case "-":
    case "*":
    case "/":
    case "%":
      return compileArithmetic(op, raw, path, scope, state, issue);
    case "max":
    case "min":
      return compileMaxMin(op, raw, path, scope, state, issue);
    case "map":
    case "filter":
    case "all":
    case "some":
    case "none":
    case "reduce":
      return compileIterator(op, raw, path, scope, state, issue);
    case "merge":
      return compileMerge(raw, path, scope, state);
    case "in":
      return compileIn(raw, path, scope, state, issue);
    case "cat":
      return compileCat(raw, path, scope, state);
    case "substr":
      return compileSubstr(raw, path, scope, state, issue);
    case "fractional":
      return compileFractional(raw, path, scope, state, issue);
    case "sem_ver":
      return compileSemVer(raw, path, scope, state, issue);
    case "starts_with":
    case "ends_with":
      return compileStringComparison(op, raw, path, scope, state, issue);
    case "regex_match":
      return compileRegexMatch(raw, path, scope, state, issue);
    case "experiment":
      return compileExperiment(raw, path, scope, state, issue);
    default:
      return issue(`unknown operator "${op}"`);
  }
}

type Issue = (message: string, at?: string) => Node;

/** Operators that flagd evaluates to null, not an error, when their arguments are wrong (jsonlogic's `max`/`min` of nothing too). */
const NULL_ON_BAD_ARGS = new Set([...CUSTOM, "max", "min"]);

/**
 * How an operator's argument problems are reported. flagd loads such rules: its own operators
 * answer null (the compiled node is null, as at evaluation), other JSON Logic fails (PARSE_ERROR).
 * Vane's extensions never reach flagd, so their problems block the flag set.
 */
function issueFor(op: string, state: State, path: string): Issue {
  if (EXTENSION_OPERATORS.has(op)) {
    return (message, at = path) => {
      state.issues.push({ path: at, message });
      return constant(null);
    };
  }
  if (NULL_ON_BAD_ARGS.has(op)) {
    return (message, at = path) => {
      state.issues.push({ path: at, message, atEvaluation: true });
      return constant(null);
    };
  }
  return (message, at = path) => failsAtEvaluation(state, at, message);
}

// --- truthiness and coercion (json-logic-engine's rules) ---------------------------------------

/** JSON Logic truthiness as json-logic-engine defines it: `[]` and `{}` are falsy. */
export function truthy(v: unknown): boolean {
  if (!v) return false;
  if (typeof v !== "object") return true;
  if (Array.isArray(v)) return v.length > 0;
  const proto = Object.getPrototypeOf(v);
  if (proto === Object.prototype || proto === null) {
    for (const _ in v) return true;
    return false;
  }
  if (Symbol.iterator in v) {
    if ("length" in v && (v as { length: unknown }).length === 0) return false;
    if ("size" in v && (v as { size: unknown }).size === 0) return false;
  }
  return true;
}

const NOT_A_NUMBER = "not a number";

/** Rejects NaN and objects before numeric use (json-logic-engine's `precoerceNumber`). */
function precoerce(v: any): any {
  if (typeof v === "number") {
    if (v !== v) fail(NOT_A_NUMBER);
    return v;
  }
  if (!v) return v;
  if (typeof v === "object") fail(NOT_A_NUMBER);
  return v;
}

function toNumber(v: unknown): number {
  return +precoerce(v);
}

// --- var / missing ---------------------------------------------------------------------------

/** Splits a dotted path; `\.` escapes a dot, `\\` a backslash (json-logic-engine's rules). */
export function splitPath(str: string): string[] {
  const parts: string[] = [];
  let current = "";
  for (let i = 0; i < str.length; i++) {
    const ch = str[i];
    if (ch === "\\") {
      const next = str[i + 1];
      if (next === "." || next === "/") {
        current += next;
        i++;
      } else if (next === "\\") {
        current += "\\";
        i++;
      } else current += "\\";
    } else if (ch === ".") {
      parts.push(current);
      current = "";
    } else current += ch;
  }
  if (parts.length !== str.length) parts.push(current);
  return parts;
}

function flagdProperties(state: State): Record<string, unknown> {
  return { flagKey: state.flagKey, timestamp: Math.floor(state.now() / 1000) };
}

/** Source object for a path at top level: `$flagd` is injected by the engine, not read from the context. */
function topSource(parts: readonly string[], scope: Scope, state: State): ((d: any) => unknown) | null {
  if (!scope.top || parts[0] !== "$flagd") return null;
  return () => flagdProperties(state);
}

function compileVar(raw: JsonValue, path: string, scope: Scope, state: State): Node {
  const list = argList("var", raw);
  if (list !== null && list.length <= 2 && (list.length === 0 || list[0] === null || typeof list[0] === "string" || typeof list[0] === "number")) {
    const key = list.length === 0 || list[0] === null || list[0] === "" ? null : String(list[0]);
    const dflt = list.length === 2 ? compileNode(list[1], `${path}[1]`, scope, state) : constant(null);
    if (key === null) return { fn: (d) => d, isConst: false };
    const parts = splitPath(key);
    return { fn: staticLookup(parts, dflt, scope, state), isConst: false };
  }
  if (list !== null && list.length > 2 && !isPlainObject(list[0])) {
    return failsAtEvaluation(state, path, "var takes a path and an optional default");
  }
  // A computed path: json-logic-engine runs its interpreter, where only missing values (not nulls) take the default.
  const keyNode = list === null ? compileNode(raw, path, scope, state) : compileNode(list, path, scope, state);
  const kf = keyNode.fn;
  return {
    fn: (d) => {
      let key: unknown = kf(d);
      let dflt: unknown;
      if (Array.isArray(key)) {
        dflt = key[1];
        key = key[0];
      }
      const notFound = dflt === undefined ? null : dflt;
      if (key === undefined || key === null || key === "") return typeof d === "function" ? null : d;
      const parts = splitPath(String(key));
      let cur: any = d;
      let i = 0;
      if (scope.top && parts[0] === "$flagd") {
        cur = flagdProperties(state);
        i = 1;
      }
      for (; i < parts.length; i++) {
        if (cur === null || cur === undefined) return notFound;
        cur = cur[parts[i]];
        if (cur === undefined) return notFound;
      }
      return typeof cur === "function" ? null : cur;
    },
    isConst: false,
  };
}

function staticLookup(parts: string[], dflt: Node, scope: Scope, state: State): Fn {
  const df = dflt.fn;
  const dConst = dflt.isConst;
  const dv = dflt.value;
  const fin = (v: any, d: any) => {
    if (v === null || v === undefined) v = dConst ? dv : df(d);
    return typeof v === "function" ? null : v;
  };
  const source = topSource(parts, scope, state);
  if (source !== null) {
    if (parts.length === 2 && parts[1] === "flagKey") {
      const key = state.flagKey;
      return () => key;
    }
    if (parts.length === 2 && parts[1] === "timestamp") return () => Math.floor(state.now() / 1000);
    const rest = parts.slice(1);
    return (d) => {
      let cur: any = source(d);
      for (let i = 0; i < rest.length && cur !== null && cur !== undefined; i++) cur = cur[rest[i]];
      return fin(cur, d);
    };
  }
  if (parts.length === 1) {
    const p0 = parts[0];
    return (d) => fin(d === null || d === undefined ? undefined : d[p0], d);
  }
  if (parts.length === 2) {
    const [p0, p1] = parts;
    return (d) => {
      let cur = d === null || d === undefined ? undefined : d[p0];
      cur = cur === null || cur === undefined ? undefined : cur[p1];
      return fin(cur, d);
    };
  }
  return (d) => {
    let cur: any = d;
    for (let i = 0; i < parts.length && cur !== null && cur !== undefined; i++) cur = cur[parts[i]];
    return fin(cur, d);
  };
}

function isMissing(d: any, key: unknown, scope: Scope, state: State): boolean {
  const parts = splitPath(String(key));
  let cur: any = d;
  let i = 0;
  if (scope.top && parts[0] === "$flagd") {
    cur = flagdProperties(state);
    i = 1;
  }
  for (; i < parts.length; i++) {
    if (!cur) return true;
    cur = cur[parts[i]];
    if (cur === undefined) return true;
  }
  return false;
}

function compileMissing(raw: JsonValue, path: string, scope: Scope, state: State): Node {
  const { fn } = argsFn("missing", raw, path, scope, state);
  return {
    fn: (d) => {
      const keys = fn(d);
      const out: unknown[] = [];
      for (const k of keys) if (isMissing(d, k, scope, state)) out.push(k);
      return out;
    },
    isConst: false,
  };
}

function compileMissingSome(raw: JsonValue, path: string, scope: Scope, state: State, issue: Issue): Node {
  if (!Array.isArray(raw) || raw.length !== 2 || !Array.isArray(raw[1])) {
    return issue("missing_some takes [minimum, [keys…]]");
  }
  const need = compileNode(raw[0], `${path}[0]`, scope, state).fn;
  const keys = compileNode(raw[1], `${path}[1]`, scope, state).fn;
  return {
    fn: (d) => {
      const ks = keys(d) as unknown[];
      const out: unknown[] = [];
      for (const k of ks) if (isMissing(d, k, scope, state)) out.push(k);
      return ks.length - out.length < (need(d) as number) ? out : [];
    },
    isConst: false,
  };
}

// --- logic -----------------------------------------------------------------------------------

function compileIf(raw: JsonValue, path: string, scope: Scope, state: State, issue: Issue): Node {
  if (!Array.isArray(raw)) return issue("if takes an array: [condition, then, …, else]");
  const nodes = compileArgs(raw, path, scope, state);
  if (nodes.length === 0) return constant(null);
  if (nodes.length === 1) return nodes[0];
  const fns = nodes.map((n) => n.fn);
  if (fns.length % 2 === 0) fns.push(() => null);
  if (fns.length === 3) {
    const [c, t, e] = fns;
    return { fn: (d) => (truthy(c(d)) ? t(d) : e(d)), isConst: false };
  }
  const last = fns.length - 1;
  return {
    fn: (d) => {
      for (let i = 0; i < last; i += 2) if (truthy(fns[i](d))) return fns[i + 1](d);
      return fns[last](d);
    },
    isConst: false,
  };
}

function compileAndOr(op: string, raw: JsonValue, path: string, scope: Scope, state: State, issue: Issue): Node {
  if (!Array.isArray(raw)) return issue(`${op} takes an array`);
  const fns = compileArgs(raw, path, scope, state).map((n) => n.fn);
  if (fns.length === 0) return constant(null);
  const wantTruthy = op === "or";
  return {
    fn: (d) => {
      let v: unknown = null;
      for (let i = 0; i < fns.length; i++) {
        v = fns[i](d);
        if (truthy(v) === wantTruthy) return v;
      }
      return v;
    },
    isConst: false,
  };
}

function compileNot(op: string, raw: JsonValue, path: string, scope: Scope, state: State): Node {
  const list = argList(op, raw);
  const f = list === null ? compileNode(raw, path, scope, state).fn : list.length === 0 ? () => undefined : compileNode(list[0], `${path}[0]`, scope, state).fn;
  return op === "!" ? { fn: (d) => !truthy(f(d)), isConst: false } : { fn: (d) => truthy(f(d)), isConst: false };
}

// --- comparisons -----------------------------------------------------------------------------

type Cmp = (a: any, b: any) => boolean;

const COMPARATORS: Record<string, Cmp> = {
  "==": (a, b) => a == b,
  "===": (a, b) => a === b,
  "!=": (a, b) => a != b,
  "!==": (a, b) => a !== b,
  "<": (a, b) => a < b,
  "<=": (a, b) => a <= b,
  ">": (a, b) => a > b,
  ">=": (a, b) => a >= b,
};

const isStrOrNull = (v: unknown) => typeof v === "string" || v === null;

/** json-logic-engine's `compareCheck`: numeric comparison unless both sides are strings/null. */
function compareCheck(item: any, prev: any): any {
  if (isStrOrNull(item) && isStrOrNull(prev)) return item;
  if (Number.isNaN(+precoerce(item)) && prev !== null) fail(NOT_A_NUMBER);
  if (Number.isNaN(+precoerce(prev))) fail(NOT_A_NUMBER);
  if (prev === null && !item) return null;
  if (item === null && !prev) return 0;
  return item;
}

function compileComparison(op: string, raw: JsonValue, path: string, scope: Scope, state: State, issue: Issue): Node {
  if (!Array.isArray(raw) || raw.length < 2) return issue(`${op} takes at least two arguments`);
  const fns = compileArgs(raw, path, scope, state).map((n) => n.fn);
  const cmp = COMPARATORS[op];
  const strict = op.length === 3;
  if (scope.folding) {
    // json-logic-engine's interpreter: numeric comparison of coerced values.
    return {
      fn: (d) => {
        if (fns.length === 2) {
          const a = fns[0](d);
          const b = fns[1](d);
          if (strict || (isStrOrNull(a) && isStrOrNull(b))) return cmp(a, b);
          if (Number.isNaN(+precoerce(a))) fail(NOT_A_NUMBER);
          if (Number.isNaN(+precoerce(b)) && a !== null) fail(NOT_A_NUMBER);
          return cmp(+(a as number), +(b as number));
        }
        let prev: any = fns[0](d);
        for (let i = 1; i < fns.length; i++) {
          const cur: any = fns[i](d);
          if (strict || (isStrOrNull(cur) && isStrOrNull(prev))) if (!cmp(prev, cur)) return false;
          if (Number.isNaN(+precoerce(cur)) && prev !== null) fail(NOT_A_NUMBER);
          if (i === 1 && Number.isNaN(+precoerce(prev))) fail(NOT_A_NUMBER);
          if (!cmp(+prev, +cur)) return false;
          prev = cur;
        }
        return true;
      },
      isConst: false,
    };
  }
  if (fns.length === 2) {
    const [fa, fb] = fns;
    if (strict) return { fn: (d) => cmp(fa(d), fb(d)), isConst: false };
    return {
      fn: (d) => {
        const a = fa(d);
        return cmp(a, compareCheck(fb(d), a));
      },
      isConst: false,
    };
  }
  // The between form `a < b < c`: chained, short-circuiting.
  return {
    fn: (d) => {
      let prev: any = fns[0](d);
      for (let i = 1; i < fns.length; i++) {
        const cur = strict ? fns[i](d) : compareCheck(fns[i](d), prev);
        if (!cmp(prev, cur)) return false;
        prev = cur;
      }
      return true;
    },
    isConst: false,
  };
}

// --- arithmetic ------------------------------------------------------------------------------

function compileArithmetic(op: string, raw: JsonValue, path: string, scope: Scope, state: State, issue: Issue): Node {
  const list = argList(op, raw);
  if (list === null) {
    // A computed argument list: apply the operator over its elements.
    const f = spread(compileNode(raw, path, scope, state));
    const apply = arithmeticOver(op);
    return { fn: (d) => apply(f(d) as unknown[]), isConst: false };
  }
  if ((op === "-" || op === "/") && list.length === 0) return issue(`${op} takes at least one argument`);
  if (op === "%" && list.length < 2) return issue("% takes at least two arguments");
  const nodes = compileArgs(list, path, scope, state);
  // A literal string, array or object operand can never be a number: json-logic-engine rejects the rule at build time.
  nodes.forEach((n, i) => {
    const lit = list[i];
    if (typeof lit === "string" && Number.isNaN(+lit)) state.buildError ??= `${path}[${i}]: "${lit}" is not a number`;
    if (Array.isArray(lit)) state.buildError ??= `${path}[${i}]: an array is not a number`;
    void n;
  });
  const fns = nodes.map((n) => n.fn);
  const n = fns.length;
  switch (op) {
    case "+":
      if (n === 0) return constant(0);
      if (n === 2) {
        const [a, b] = fns;
        return { fn: (d) => precoerce(toNumber(a(d)) + toNumber(b(d))), isConst: false };
      }
      return {
        fn: (d) => {
          let s = 0;
          for (let i = 0; i < n; i++) s += toNumber(fns[i](d));
          return precoerce(s);
        },
        isConst: false,
      };
    case "*":
      if (n === 0) return constant(1);
      return {
        fn: (d) => {
          let p = 1;
          for (let i = 0; i < n; i++) p *= toNumber(fns[i](d));
          return precoerce(p);
        },
        isConst: false,
      };
    case "-":
      if (n === 1) return { fn: (d) => -precoerce(toNumber(fns[0](d))), isConst: false };
      return {
        fn: (d) => {
          let r = toNumber(fns[0](d));
          for (let i = 1; i < n; i++) r -= toNumber(fns[i](d));
          return precoerce(r);
        },
        isConst: false,
      };
    case "/": {
      const all = n === 1 ? [() => 1, fns[0]] : fns;
      return {
        fn: (d) => {
          let r = toNumber(all[0](d));
          for (let i = 1; i < all.length; i++) r /= precoerce(toNumber(all[i](d)) || NaN);
          return precoerce(r);
        },
        isConst: false,
      };
    }
    default: // "%"
      return {
        fn: (d) => {
          let r = toNumber(fns[0](d));
          for (let i = 1; i < n; i++) r %= toNumber(fns[i](d));
          return precoerce(r);
        },
        isConst: false,
      };
  }
}

function arithmeticOver(op: string): (xs: unknown[]) => number {
  return (xs) => {
    if (op === "+") return precoerce(xs.reduce<number>((a, b) => a + toNumber(b), 0));
    if (op === "*") return precoerce(xs.reduce<number>((a, b) => a * toNumber(b), 1));
    if (xs.length === 0) fail("invalid arguments");
    if (op === "-") return xs.length === 1 ? -precoerce(xs[0]) : precoerce(xs.slice(1).reduce<number>((a, b) => a - toNumber(b), toNumber(xs[0])));
    if (op === "/")
      return xs.length === 1 ? 1 / precoerce(xs[0] || NaN) : precoerce(xs.slice(1).reduce<number>((a, b) => a / toNumber(b || NaN), toNumber(xs[0])));
    if (xs.length < 2) fail("invalid arguments");
    return precoerce(xs.slice(1).reduce<number>((a, b) => a % toNumber(b), toNumber(xs[0])));
  };
}

function compileMaxMin(op: string, raw: JsonValue, path: string, scope: Scope, state: State, issue: Issue): Node {
  if (Array.isArray(raw) && raw.length === 0) return issue(`${op} takes at least one number`);
  const { fn } = argsFn(op, raw, path, scope, state);
  const isMax = op === "max";
  return {
    fn: (d) => {
      const xs = fn(d);
      if (xs.length === 0 || typeof xs[0] !== "number") fail("invalid arguments");
      let best = xs[0] as number;
      for (let i = 1; i < xs.length; i++) {
        const x = xs[i];
        if (typeof x !== "number") fail("invalid arguments");
        if (isMax ? x > best : x < best) best = x;
      }
      return best;
    },
    isConst: false,
  };
}

// --- arrays ----------------------------------------------------------------------------------

/** json-logic-engine caps `reduce` accumulators at depth 0: no nested objects or arrays. */
function assertFlat(v: unknown): unknown {
  if (!v || typeof v !== "object") return v;
  const values = Array.isArray(v) ? v : Object.values(v);
  for (const x of values) if (x && typeof x === "object") fail("exceeded allowed depth");
  return v;
}

function selectorArray(v: unknown): unknown[] {
  if (!v) return [];
  if (!Array.isArray(v)) fail("iterating over a non-array");
  return v;
}

function compileIterator(op: string, raw: JsonValue, path: string, scope: Scope, state: State, issue: Issue): Node {
  if (!Array.isArray(raw) || raw.length < 2 || raw.length > (op === "reduce" ? 3 : 2)) {
    return issue(op === "reduce" ? "reduce takes [array, rule, initial?]" : `${op} takes [array, rule]`);
  }
  const sel = compileNode(raw[0], `${path}[0]`, scope, state).fn;
  const mapper = compileNode(raw[1], `${path}[1]`, { top: false, folding: scope.folding }, state).fn;
  switch (op) {
    case "map":
      return { fn: (d) => selectorArray(sel(d)).map((x) => mapper(x)), isConst: false };
    case "filter":
      return { fn: (d) => selectorArray(sel(d)).filter((x) => truthy(mapper(x))), isConst: false };
    case "some":
      return { fn: (d) => selectorArray(sel(d)).some((x) => truthy(mapper(x))), isConst: false };
    case "none":
      return { fn: (d) => !selectorArray(sel(d)).some((x) => truthy(mapper(x))), isConst: false };
    case "all":
      return {
        fn: (d) => {
          // Nothing to check (null, a missing attribute, []) is false, as in flagd's jsonlogic.
          const xs = sel(d);
          if (!truthy(xs)) return false;
          return selectorArray(xs).every((x) => truthy(mapper(x)));
        },
        isConst: false,
      };
    default: {
      const init = raw.length === 3 ? compileNode(raw[2], `${path}[2]`, scope, state).fn : null;
      const step = (accumulator: unknown, current: unknown) => assertFlat(mapper({ accumulator, current }));
      return {
        fn: (d) => {
          const xs = selectorArray(sel(d));
          if (init === null) {
            if (xs.length === 0) fail("reduce of an empty array with no initial value");
            return xs.reduce(step);
          }
          return xs.reduce(step, assertFlat(init(d)));
        },
        isConst: false,
      };
    }
  }
}

function compileMerge(raw: JsonValue, path: string, scope: Scope, state: State): Node {
  const { fn } = argsFn("merge", raw, path, scope, state);
  return {
    fn: (d) => {
      const out: unknown[] = [];
      for (const x of fn(d)) {
        if (Array.isArray(x)) for (const y of x) out.push(y);
        else out.push(x);
      }
      return out;
    },
    isConst: false,
  };
}

function compileIn(raw: JsonValue, path: string, scope: Scope, state: State, issue: Issue): Node {
  const list = argList("in", raw);
  if (list !== null && list.length !== 2) return issue("in takes [needle, haystack]");
  const search = (needle: unknown, hay: unknown): boolean => {
    if (!hay) return false;
    if (typeof hay === "string") return hay.includes(String(needle));
    if (Array.isArray(hay)) return hay.includes(needle);
    return false; // flagd's jsonlogic: any other haystack contains nothing
  };
  if (list !== null) {
    // Two closures, no argument array per call.
    const [a, b] = compileArgs(list, path, scope, state).map((n) => n.fn);
    return { fn: (d) => search(a(d), b(d)), isConst: false };
  }
  const { fn } = argsFn("in", raw, path, scope, state);
  return {
    fn: (d) => {
      const [needle, hay] = fn(d);
      return search(needle, hay);
    },
    isConst: false,
  };
}

function compileCat(raw: JsonValue, path: string, scope: Scope, state: State): Node {
  if (typeof raw === "string") return constant(raw);
  if (typeof raw === "number") return constant(String(raw));
  const list = argList("cat", raw);
  if (list === null || scope.folding) {
    // Interpreted `cat`: skips null and undefined.
    const f = list === null ? compileNode(raw, path, scope, state).fn : argsFn("cat", raw, path, scope, state).fn;
    return {
      fn: (d) => {
        const v = f(d);
        if (typeof v === "string") return v;
        if (!Array.isArray(v)) return String((v as { toString(): string }).toString());
        let s = "";
        for (const x of v) if (x !== null && x !== undefined) s += x;
        return s;
      },
      isConst: false,
    };
  }
  // Compiled `cat`: plain string concatenation, so null reads "null".
  const fns = compileArgs(list, path, scope, state).map((n) => n.fn);
  return {
    fn: (d) => {
      let s = "";
      for (let i = 0; i < fns.length; i++) s += fns[i](d) as string;
      return s;
    },
    isConst: false,
  };
}

function compileSubstr(raw: JsonValue, path: string, scope: Scope, state: State, issue: Issue): Node {
  const list = argList("substr", raw);
  if (list !== null && (list.length < 2 || list.length > 3)) return issue("substr takes [string, start, length?]");
  const { fn } = argsFn("substr", raw, path, scope, state);
  return {
    fn: (d) => {
      const [s, from, end] = fn(d) as [unknown, number, number | undefined];
      if (typeof s !== "string") fail("substr: not a string");
      if (end !== undefined && end < 0) {
        const r = s.substr(from);
        return r.substr(0, r.length + end);
      }
      return s.substr(from, end);
    },
    isConst: false,
  };
}

// --- flagd's custom operators ----------------------------------------------------------------

function compileStringComparison(op: string, raw: JsonValue, path: string, scope: Scope, state: State, issue: Issue): Node {
  const list = argList(op, raw);
  if (list !== null) {
    if (list.length !== 2) return issue(`${op} takes [string, prefix-or-suffix]`);
    list.forEach((a, i) => {
      if (!isPlainObject(a) && typeof a !== "string") issue(`${op}: argument must be a string`, `${path}[${i}]`);
    });
  }
  const starts = op === "starts_with";
  if (list !== null) {
    const [a, b] = compileArgs(list, path, scope, state).map((n) => n.fn);
    return {
      fn: (d) => {
        const x = a(d);
        const y = b(d);
        if (typeof x !== "string" || typeof y !== "string") return null;
        return starts ? x.startsWith(y) : x.endsWith(y);
      },
      isConst: false,
    };
  }
  const { fn } = argsFn(op, raw, path, scope, state);
  return {
    fn: (d) => {
      const xs = fn(d);
      if (xs.length !== 2 || typeof xs[0] !== "string" || typeof xs[1] !== "string") return null;
      return starts ? xs[0].startsWith(xs[1]) : xs[0].endsWith(xs[1]);
    },
    isConst: false,
  };
}

function compileRegexMatch(raw: JsonValue, path: string, scope: Scope, state: State, issue: Issue): Node {
  if (!Array.isArray(raw) || raw.length < 2 || raw.length > 3) return issue('regex_match takes [value, "pattern", "flags"?]');
  const [value, pattern, flags = ""] = raw;
  if (typeof pattern !== "string") return issue("regex_match: the pattern must be a string literal", `${path}[1]`);
  if (pattern.length > MAX_REGEX_LENGTH) return issue(`regex_match: the pattern is longer than ${MAX_REGEX_LENGTH} characters`, `${path}[1]`);
  if (typeof flags !== "string" || !validRegexFlags(flags)) return issue('regex_match: flags must be a string of distinct "i", "m", "s"', `${path}[2]`);
  // RE2 (linear time), compiled once per flag set version. A pattern it refuses (e.g. one stored
  // before RE2, with a lookahead) fails only its flag, as flagd treats per-flag errors.
  let re: CompiledRegex;
  try {
    re = compileRegex(pattern, flags);
  } catch (e) {
    return failsAtEvaluation(state, `${path}[1]`, `regex_match: ${errorText(e)}`);
  }
  const v = compileNode(value, `${path}[0]`, scope, state).fn;
  return {
    fn: (d) => {
      const x = v(d);
      return typeof x === "string" ? re.test(x) : null;
    },
    isConst: false,
  };
}

function compileExperiment(raw: JsonValue, path: string, scope: Scope, state: State, issue: Issue): Node {
  if (!Array.isArray(raw) || raw.length !== 2) return issue('experiment takes ["experimentId", expression]');
  const [id, expr] = raw;
  if (typeof id !== "string" || id === "") return issue("experiment: the id must be a non-empty string literal", `${path}[0]`);
  const inner = compileNode(expr, `${path}[1]`, scope, state).fn;
  return {
    fn: (d) => {
      const r = inner(d);
      if (r !== null && r !== undefined) assignment.experimentId = id;
      return r;
    },
    isConst: false,
  };
}

function compileSemVer(raw: JsonValue, path: string, scope: Scope, state: State, issue: Issue): Node {
  const list = argList("sem_ver", raw);
  if (list !== null) {
    if (list.length !== 3) return issue("sem_ver takes [version, operator, version]");
    if (!isPlainObject(list[1]) && !SEMVER_OPERATORS.has(String(list[1]))) {
      issue(`sem_ver: unknown operator ${JSON.stringify(list[1])}; expected one of = != < <= > >= ^ ~`, `${path}[1]`);
    }
    for (const i of [0, 2]) {
      const v = list[i];
      if (!isPlainObject(v) && !Array.isArray(v) && parseSemVer(v) === null) issue(`sem_ver: ${JSON.stringify(v)} is not a semantic version`, `${path}[${i}]`);
    }
    const nodes = compileArgs(list, path, scope, state);
    // The common shape `[{"var": …}, ">=", "1.2.3"]`: parse the literal side once.
    if (nodes[1].isConst && nodes[2].isConst) {
      const opText = String(nodes[1].value);
      const right = parseSemVer(nodes[2].value);
      const left = nodes[0].fn;
      if (right !== null && SEMVER_OPERATORS.has(opText)) return { fn: (d) => semVerAgainst(left(d), opText, right), isConst: false };
    }
    const fns = nodes.map((n) => n.fn);
    return { fn: (d) => semVerOperator([fns[0](d), fns[1](d), fns[2](d)]), isConst: false };
  }
  const { fn } = argsFn("sem_ver", raw, path, scope, state);
  return { fn: (d) => semVerOperator(fn(d)), isConst: false };
}

function semVerAgainst(value: unknown, op: string, right: SemVer): boolean | null {
  const left = parseSemVer(value);
  if (left === null) return null;
  switch (op) {
    case "^":
      return left.major === right.major;
    case "~":
      return left.major === right.major && left.minor === right.minor;
  }
  const c = compareSemVer(left, right);
  switch (op) {
    case "=":
      return c === 0;
    case "!=":
      return c !== 0;
    case "<":
      return c < 0;
    case "<=":
      return c <= 0;
    case ">":
      return c > 0;
    default:
      return c >= 0;
  }
}

/**
 * Validates bucket entries `[variant, weight?]…` into a flat `[v0, w0, v1, w1…]` list and its total;
 * null when flagd would reject them (which makes `fractional` return null).
 */
function readBuckets(args: readonly unknown[], start: number): { entries: unknown[]; total: number } | null {
  const entries: unknown[] = [];
  let total = 0;
  for (let i = start; i < args.length; i++) {
    const e = args[i];
    if (!Array.isArray(e) || e.length === 0 || e.length > 2) return null;
    const v = e[0];
    let variant: unknown;
    if (typeof v === "string" || typeof v === "number" || typeof v === "boolean") variant = v;
    else if (v === null || v === undefined) variant = null;
    else return null;
    let weight = 1;
    if (e.length === 2) {
      const w = e[1];
      if (typeof w !== "number" || !Number.isInteger(w)) return null;
      weight = w < 0 ? 0 : w; // negative weights (e.g. from rollout arithmetic) count as 0
    }
    total += weight;
    entries.push(variant, weight);
  }
  if (total > MAX_TOTAL_WEIGHT) return null;
  return { entries, total };
}

/**
 * The variant of a fractional with a single bucket of positive weight: every hash lands in it, so
 * flagd (fractional v2, its testbed's "single entry" scenario) answers it even with no bucketing
 * value or targeting key. undefined when there is a real choice to make.
 */
function soleBucket(buckets: { entries: unknown[]; total: number }): unknown {
  return buckets.entries.length === 2 && buckets.total > 0 ? buckets.entries[0] : undefined;
}

function compileFractional(raw: JsonValue, path: string, scope: Scope, state: State, issue: Issue): Node {
  const prefix = createMurmur3Prefix(state.flagKey);
  const list = argList("fractional", raw);
  /** Hash of the bucketing value: an explicit string, else flag key + targeting key; null when there is none. */
  const hashFor = (first: unknown, d: any): number | null => {
    if (typeof first === "string") return murmur3Utf8(first);
    const tk = d === null || d === undefined ? undefined : d.targetingKey;
    if (!tk) return null;
    return murmur3Utf8Continue(prefix, typeof tk === "string" ? tk : String(tk));
  };
  /** Where the buckets start: after a string bucketing value, or after a null one (flagd then falls back to the targeting key). */
  const startOf = (first: unknown) => (typeof first === "string" || first === null || first === undefined ? 1 : 0);

  if (list === null) {
    const f = spread(compileNode(raw, path, scope, state));
    return {
      fn: (d) => {
        const args = f(d) as unknown[];
        if (args.length < 1) return null;
        const buckets = readBuckets(args, startOf(args[0]));
        if (buckets === null) return null;
        const only = soleBucket(buckets);
        if (only !== undefined) return only;
        const h = hashFor(args[0], d);
        return h === null ? null : pickBucket(h, buckets.entries, buckets.total);
      },
      isConst: false,
    };
  }
  if (list.length === 0) return issue("fractional takes at least one bucket: [variant, weight]");
  validateBuckets(list, path, state);
  const nodes = compileArgs(list, path, scope, state);
  const firstLiteral = list[0];
  // Buckets usually are literals: read them once.
  const bucketNodes = typeof firstLiteral === "string" || isPlainObject(firstLiteral) || firstLiteral === null ? nodes.slice(1) : nodes;
  const bucketsConst = bucketNodes.every((n) => n.isConst);
  if (bucketsConst && !isPlainObject(firstLiteral)) {
    const buckets = readBuckets(
      bucketNodes.map((n) => n.value),
      0,
    );
    if (buckets === null) return constant(null);
    const only = soleBucket(buckets);
    if (only !== undefined) return { fn: () => only, isConst: false };
    const { entries, total } = buckets;
    if (typeof firstLiteral === "string") {
      const h = murmur3Utf8(firstLiteral);
      return constant(pickBucket(h, entries, total));
    }
    return {
      fn: (d) => {
        const tk = d === null || d === undefined ? undefined : d.targetingKey;
        if (!tk) return null;
        return pickBucket(murmur3Utf8Continue(prefix, typeof tk === "string" ? tk : String(tk)), entries, total);
      },
      isConst: false,
    };
  }
  const fns = nodes.map((n) => n.fn);
  return {
    fn: (d) => {
      const args = fns.map((f) => f(d));
      const buckets = readBuckets(args, startOf(args[0]));
      if (buckets === null) return null;
      const only = soleBucket(buckets);
      if (only !== undefined) return only;
      const h = hashFor(args[0], d);
      return h === null ? null : pickBucket(h, buckets.entries, buckets.total);
    },
    isConst: false,
  };
}

function validateBuckets(list: JsonValue[], path: string, state: State): void {
  let total = 0;
  let allLiteral = true;
  list.forEach((e, i) => {
    if (i === 0 && (typeof e === "string" || isPlainObject(e) || e === null)) return;
    const at = `${path}[${i}]`;
    if (isPlainObject(e)) {
      allLiteral = false;
      return;
    }
    if (!Array.isArray(e) || e.length === 0 || e.length > 2) {
      state.issues.push({ path: at, message: "a fractional bucket is [variant, weight?]", atEvaluation: true });
      return;
    }
    const v = e[0];
    if (!isPlainObject(v) && v !== null && typeof v !== "string" && typeof v !== "number" && typeof v !== "boolean") {
      state.issues.push({ path: `${at}[0]`, message: "a fractional variant must be a string, number, boolean or null", atEvaluation: true });
    }
    if (e.length === 2) {
      const w = e[1];
      if (isPlainObject(w)) allLiteral = false;
      else if (typeof w !== "number" || !Number.isInteger(w)) {
        state.issues.push({ path: `${at}[1]`, message: "a fractional weight must be an integer", atEvaluation: true });
      } else total += Math.max(0, w);
    } else total += 1;
  });
  if (allLiteral && total > MAX_TOTAL_WEIGHT) {
    state.issues.push({ path, message: `fractional weights sum to ${total}, above the maximum ${MAX_TOTAL_WEIGHT}`, atEvaluation: true });
  }
}

// --- static variant checks -------------------------------------------------------------------

function collectResultLiterals(logic: JsonValue, path: string, state: State, out: ResultLiteral[], refs: string[]): void {
  if (typeof logic === "string" || typeof logic === "number" || typeof logic === "boolean") {
    out.push({ path, value: logic });
    return;
  }
  if (!isPlainObject(logic)) return;
  const keys = Object.keys(logic);
  if (keys.length !== 1) return;
  const op = keys[0];
  const args = logic[op];
  if (op === "$ref") {
    if (typeof args !== "string" || !Object.hasOwn(state.evaluators, args) || refs.includes(args)) return;
    collectResultLiterals(state.evaluators[args], `$evaluators.${args}`, state, out, [...refs, args]);
    return;
  }
  if ((op === "if" || op === "?:") && Array.isArray(args)) {
    if (args.length === 1) collectResultLiterals(args[0], `${path}.${op}[0]`, state, out, refs);
    for (let i = 1; i < args.length; i += 2) collectResultLiterals(args[i], `${path}.${op}[${i}]`, state, out, refs);
    if (args.length >= 3 && args.length % 2 === 1) collectResultLiterals(args[args.length - 1], `${path}.${op}[${args.length - 1}]`, state, out, refs);
    return;
  }
  if (op === "experiment" && state.extensions && Array.isArray(args) && args.length === 2) {
    collectResultLiterals(args[1], `${path}.experiment[1]`, state, out, refs);
    return;
  }
  if (op === "fractional" && Array.isArray(args)) {
    args.forEach((e, i) => {
      if (Array.isArray(e) && e.length >= 1 && e.length <= 2) {
        const v = e[0];
        if (typeof v === "string" || typeof v === "number" || typeof v === "boolean") out.push({ path: `${path}.fractional[${i}][0]`, value: v });
        else if (isPlainObject(v)) collectResultLiterals(v, `${path}.fractional[${i}][0]`, state, out, refs);
      }
    });
  }
}
