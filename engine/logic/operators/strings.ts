/** `cat`, `substr`, flagd's `starts_with`/`ends_with`, and Vane's `regex_match` (RE2, linear time). */
import type { Node, OperatorCall } from "../types.ts";
import { constant, fail, failsAtEvaluation, isPlainObject, errorText } from "../values.ts";
import { compileRegex, MAX_REGEX_LENGTH, validRegexFlags, type CompiledRegex } from "../../regex.ts";

export function compileCat(c: OperatorCall): Node {
  const { raw, path, scope, state, compileNode, compileArgs, argsFn, argList } = c;
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

export function compileSubstr(c: OperatorCall): Node {
  const { raw, path, scope, state, issue, argsFn, argList } = c;
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

export function compileStringComparison(c: OperatorCall): Node {
  const { op, raw, path, scope, state, issue, compileArgs, argsFn, argList } = c;
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

export function compileRegexMatch(c: OperatorCall): Node {
  const { raw, path, scope, state, issue, compileNode } = c;
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
