/* eslint-disable @typescript-eslint/no-explicit-any -- compiled closures read arbitrary JSON on the hot path */
/**
 * Compiles flagd targeting (JSON Logic plus `fractional`, `sem_ver`, `starts_with`, `ends_with`,
 * and Vane's extensions) into closures, once per flag set version. Evaluating walks no tree and
 * switches on no operator name; it only calls the closures built here. This is the core: `$ref`s,
 * build-time folding, argument forms, how problems are reported. Each operator family compiles in
 * its own file under `operators/`, registered in the one table of `operators.ts`.
 *
 * Semantics follow json-logic-engine 5 as flagd-core (flagd's JS reference) drives it: its
 * truthiness (empty arrays and empty plain objects are falsy), its number coercion (arithmetic and
 * mixed-type comparisons on non-numeric input fail the evaluation), `var` returning the default
 * for null as well as missing values, and sub-expressions without variables being evaluated once at
 * build time (where a failure fails the whole rule).
 */
import type { FlagSetIssue, JsonValue } from "../types.ts";
import type { Scope, Node, State, Issue, CompileLogicOptions, ResultLiteral, CompiledLogic } from "./types.ts";
import { constant, fail, failsAtEvaluation, isPlainObject, errorText, spread } from "./values.ts";
import { operatorSpec } from "./operators.ts";

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
    ...(state.assignment ? { assignment: state.assignment } : {}),
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
  const spec = keys.length === 1 ? operatorSpec(op) : undefined;
  if (spec === undefined || spec.extension) return false;
  const args = logic[op];
  if (op === "var") return insideIterator && !String(args).includes("../../");
  if (op === "missing") return Array.isArray(args) && args.length === 0;
  if (op === "missing_some" || spec.custom) return false;
  if (spec.iterator) {
    if (!Array.isArray(args)) return false;
    return isDeterministic(args[0] ?? null, insideIterator, state) && isDeterministic(args[1] ?? null, true, state);
  }
  return isDeterministic(args, insideIterator, state);
}

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
  const spec = operatorSpec(op);
  if (spec === undefined || (spec.extension && !state.extensions)) return failsAtEvaluation(state, `${path}.${op}`, `unknown operator "${op}"`);

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

/** Arguments of an operator; non-lazy operators read a primitive argument `x` as `[x]`. */
function argList(op: string, raw: JsonValue): JsonValue[] | null {
  if (Array.isArray(raw)) return raw;
  if (!operatorSpec(op)?.lazy && (raw === null || typeof raw !== "object")) return [raw];
  return null;
}

function compileArgs(args: JsonValue[], path: string, scope: Scope, state: State): Node[] {
  return args.map((a, i) => compileNode(a, `${path}[${i}]`, scope, state));
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

export function compileOperator(op: string, raw: JsonValue, path: string, scope: Scope, state: State): Node {
  const issue = issueFor(op, state, path);
  const spec = operatorSpec(op);
  if (spec === undefined) return issue(`unknown operator "${op}"`);
  return spec.compile({ op, raw, path, scope, state, issue, compileNode, compileArgs, argsFn, argList });
}

/**
 * How an operator's argument problems are reported. flagd loads such rules: its own operators
 * answer null (the compiled node is null, as at evaluation), other JSON Logic fails (PARSE_ERROR).
 * Vane's extensions never reach flagd, so their problems block the flag set.
 */
function issueFor(op: string, state: State, path: string): Issue {
  const spec = operatorSpec(op);
  if (spec?.extension) {
    return (message, at = path) => {
      state.issues.push({ path: at, message });
      return constant(null);
    };
  }
  if (spec?.nullOnBadArgs) {
    return (message, at = path) => {
      state.issues.push({ path: at, message, atEvaluation: true });
      return constant(null);
    };
  }
  return (message, at = path) => failsAtEvaluation(state, at, message);
}

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
