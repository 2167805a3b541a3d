/** `+` `-` `*` `/` `%`, `max`, `min`: arithmetic on coerced numbers; a non-number fails the evaluation. */
import type { Node, OperatorCall } from "../types.ts";
import { constant, fail, precoerce, toNumber, spread } from "../values.ts";

export function compileArithmetic(c: OperatorCall): Node {
  const { op, raw, path, scope, state, issue, compileNode, compileArgs, argList } = c;
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

export function compileMaxMin(c: OperatorCall): Node {
  const { op, raw, path, scope, state, issue, argsFn } = c;
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
