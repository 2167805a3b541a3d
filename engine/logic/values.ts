/* eslint-disable @typescript-eslint/no-explicit-any -- compiled closures read arbitrary JSON on the hot path */
/** Building blocks of compiled rules: constants, failures, and json-logic-engine's truthiness and number coercion. */
import type { JsonValue } from "../types.ts";
import type { Fn, Node, State } from "./types.ts";
import { LogicError } from "./types.ts";

export const constant = (value: unknown): Node => ({ fn: () => value, isConst: true, value });

/**
 * Throws a LogicError without capturing a stack trace: a rule that fails for a context fails on
 * every evaluation for it, and V8's stack capture would cost more than the evaluation.
 */
export function fail(message: string): never {
  throw Object.create(LogicError.prototype, { message: { value: message, enumerable: false, writable: true, configurable: true } }) as LogicError;
}

/**
 * A rule flagd would load but cannot evaluate (jsonlogic reports an error, flagd answers
 * PARSE_ERROR): reported with `atEvaluation`, and the rule fails for every context.
 */
export function failsAtEvaluation(state: State, path: string, message: string): Node {
  state.issues.push({ path, message, atEvaluation: true });
  state.buildError ??= message;
  return constant(null);
}

export function isPlainObject(v: unknown): v is Record<string, JsonValue> {
  return typeof v === "object" && v !== null && !Array.isArray(v);
}

export function errorText(e: unknown): string {
  if (e instanceof Error) return e.message;
  if (typeof e === "number" && Number.isNaN(e)) return "not a number";
  return String(e);
}

/** A single dynamic argument (an operation rather than an array): evaluated, then read as an array. */
export function spread(node: Node): Fn {
  const f = node.fn;
  return (d) => {
    const v = f(d);
    return Array.isArray(v) ? v : [v];
  };
}

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

export const NOT_A_NUMBER = "not a number";

/** Rejects NaN and objects before numeric use (json-logic-engine's `precoerceNumber`). */
export function precoerce(v: any): any {
  if (typeof v === "number") {
    if (v !== v) fail(NOT_A_NUMBER);
    return v;
  }
  if (!v) return v;
  if (typeof v === "object") fail(NOT_A_NUMBER);
  return v;
}

export function toNumber(v: unknown): number {
  return +precoerce(v);
}

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
