/** `if`/`?:`, `and`/`or`, `!`/`!!`: control flow on JSON Logic truthiness. */
import type { Node, OperatorCall } from "../types.ts";
import { constant, truthy } from "../values.ts";

export function compileIf(c: OperatorCall): Node {
  const { raw, path, scope, state, issue, compileArgs } = c;
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

export function compileAndOr(c: OperatorCall): Node {
  const { op, raw, path, scope, state, issue, compileArgs } = c;
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

export function compileNot(c: OperatorCall): Node {
  const { op, raw, path, scope, state, compileNode, argList } = c;
  const list = argList(op, raw);
  const f = list === null ? compileNode(raw, path, scope, state).fn : list.length === 0 ? () => undefined : compileNode(list[0], `${path}[0]`, scope, state).fn;
  return op === "!" ? { fn: (d) => !truthy(f(d)), isConst: false } : { fn: (d) => truthy(f(d)), isConst: false };
}
