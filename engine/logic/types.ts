/* eslint-disable @typescript-eslint/no-explicit-any -- compiled closures read arbitrary JSON on the hot path */
/** The types of rule compilation: compiled nodes, the compile state, and what an operator's compiler receives. */
import type { EvaluationContext, FlagSetIssue, JsonValue } from "../types.ts";

/** A compiled expression: takes the data in scope (the context at top level, the element inside `map` & co). */
export type Fn = (data: any) => unknown;

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
  /**
   * Present when the rule has an `experiment` operator: after `evaluate`, the experiment that
   * assigned the result (the caller clears it before). Evaluation is synchronous and a rule never
   * runs inside another, so one slot per compiled rule is enough and allocates nothing.
   */
  readonly assignment?: Assignment;
}

/** Which experiment, if any, assigned the last result of a rule. */
export interface Assignment {
  experimentId: string | undefined;
}

/** Where an expression is compiled. */
export interface Scope {
  /** At the top of the rule (data is the evaluation context), not inside an iterator. */
  readonly top: boolean;
  /** Inside a sub-expression evaluated at build time (json-logic-engine then uses its interpreter). */
  readonly folding: boolean;
}

/** A compiled expression, and its value when known at build time. */
export interface Node {
  readonly fn: Fn;
  /** Known at build time. */
  readonly isConst: boolean;
  readonly value?: unknown;
}

/** What compiling one rule accumulates: its settings, issues, `$ref`s being expanded. */
export interface State {
  readonly flagKey: string;
  readonly extensions: boolean;
  readonly now: () => number;
  readonly evaluators: Readonly<Record<string, JsonValue>>;
  readonly issues: FlagSetIssue[];
  readonly refStack: string[];
  buildError?: string;
  /** Created by the first `experiment` operator compiled; becomes {@link CompiledLogic.assignment}. */
  assignment?: Assignment;
}

/** Reports a problem with an operator's arguments, the way flagd would treat it (see `issueFor`), and returns the node to use. */
export type Issue = (message: string, at?: string) => Node;

/** What an operator's compiler receives: its call, where it sits, and the compiler's own helpers (so operators never import the core). */
export interface OperatorCall {
  readonly op: string;
  /** The operator's arguments as written. */
  readonly raw: JsonValue;
  readonly path: string;
  readonly scope: Scope;
  readonly state: State;
  readonly issue: Issue;
  compileNode(logic: JsonValue, path: string, scope: Scope, state: State): Node;
  compileArgs(args: JsonValue[], path: string, scope: Scope, state: State): Node[];
  /** All arguments evaluated into an array, whatever form they were written in. */
  argsFn(op: string, raw: JsonValue, path: string, scope: Scope, state: State): { fn: (d: any) => unknown[]; nodes: Node[] | null };
  /** The argument list as written; a non-lazy operator reads a primitive `x` as `[x]`; null for a computed list. */
  argList(op: string, raw: JsonValue): JsonValue[] | null;
}

/** One operator in the table (`operators.ts`). */
export interface OperatorSpec {
  compile(call: OperatorCall): Node;
  /** Receives its arguments unevaluated (control flow, comparisons, iterators). */
  readonly lazy?: true;
  /** Runs its second argument per array element (`map` & co). */
  readonly iterator?: true;
  /** One of flagd's custom operators (`fractional`, `sem_ver`, `starts_with`, `ends_with`): never folded at build time. */
  readonly custom?: true;
  /** Bad arguments make it null (flagd's custom operators, `max`/`min` of nothing) rather than failing the rule. */
  readonly nullOnBadArgs?: true;
  /** Vane's own, beyond flagd's dialect: only with `extensions`, and its problems block the flag set. */
  readonly extension?: true;
}
