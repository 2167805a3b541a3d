/** `map`, `filter`, `reduce`, `all`, `some`, `none`, `merge`, `in`: arrays (and `in` on strings). */
import type { Node, OperatorCall } from "../types.ts";
import { fail, truthy } from "../values.ts";

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

export function compileIterator(c: OperatorCall): Node {
  const { op, raw, path, scope, state, issue, compileNode } = c;
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

export function compileMerge(c: OperatorCall): Node {
  const { raw, path, scope, state, argsFn } = c;
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

export function compileIn(c: OperatorCall): Node {
  const { raw, path, scope, state, issue, compileArgs, argsFn, argList } = c;
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
