/* eslint-disable @typescript-eslint/no-explicit-any -- compiled closures read arbitrary JSON on the hot path */
/** `var`, `missing`, `missing_some`: reading the context (and `$flagd`, which the engine injects). */
import type { Fn, Scope, Node, State, OperatorCall } from "../types.ts";
import { constant, failsAtEvaluation, isPlainObject, splitPath } from "../values.ts";

function flagdProperties(state: State): Record<string, unknown> {
  return { flagKey: state.flagKey, timestamp: Math.floor(state.now() / 1000) };
}

/** Source object for a path at top level: `$flagd` is injected by the engine, not read from the context. */
function topSource(parts: readonly string[], scope: Scope, state: State): ((d: any) => unknown) | null {
  if (!scope.top || parts[0] !== "$flagd") return null;
  return () => flagdProperties(state);
}

export function compileVar(c: OperatorCall): Node {
  const { raw, path, scope, state, compileNode, argList } = c;
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

export function compileMissing(c: OperatorCall): Node {
  const { raw, path, scope, state, argsFn } = c;
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

export function compileMissingSome(c: OperatorCall): Node {
  const { raw, path, scope, state, issue, compileNode } = c;
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
