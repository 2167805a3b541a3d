/* eslint-disable @typescript-eslint/no-explicit-any -- compiled closures read arbitrary JSON on the hot path */
/** `==` `===` `!=` `!==` `<` `<=` `>` `>=`: json-logic-engine's comparisons, with its number coercion. */
import type { Node, OperatorCall } from "../types.ts";
import { fail, NOT_A_NUMBER, precoerce } from "../values.ts";

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

export function compileComparison(c: OperatorCall): Node {
  const { op, raw, path, scope, state, issue, compileArgs } = c;
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
