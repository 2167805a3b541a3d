/**
 * Semantic versions as flagd's `sem_ver` operator reads them: semver 2.0.0, an optional leading
 * `v`/`V`, and the partial forms `1` and `1.2` (read as `1.0.0`, `1.2.0`).
 *
 * Both halves live here: parsing and comparing versions, and the operator's compiler.
 */
import type { Node, OperatorCall } from "../types.ts";
import { isPlainObject } from "../values.ts";

/** A parsed version; `pre` holds numeric identifiers as numbers. */
export interface SemVer {
  readonly major: number;
  readonly minor: number;
  readonly patch: number;
  readonly pre: readonly (string | number)[];
}

const NUM = "0|[1-9]\\d*";
const PRE_ID = `(?:${NUM}|\\d*[a-zA-Z-][a-zA-Z0-9-]*)`;
const FULL = new RegExp(`^v?(${NUM})\\.(${NUM})\\.(${NUM})(?:-(${PRE_ID}(?:\\.${PRE_ID})*))?(?:\\+[0-9A-Za-z-]+(?:\\.[0-9A-Za-z-]+)*)?$`);
const PARTIAL = /^(\d{1,16})(?:\.(\d{1,16}))?$/;
const MAX_LENGTH = 256;

/** Parses a version, or returns null. Accepts strings and numbers (a number is read as its decimal text). */
export function parseSemVer(raw: unknown): SemVer | null {
  const text = String(raw);
  const str = text.charCodeAt(0) === 0x76 || text.charCodeAt(0) === 0x56 ? text.slice(1) : text;
  if (str.length > MAX_LENGTH) return null;
  const m = FULL.exec(str.trim());
  if (m !== null) {
    const major = Number(m[1]);
    const minor = Number(m[2]);
    const patch = Number(m[3]);
    if (major > Number.MAX_SAFE_INTEGER || minor > Number.MAX_SAFE_INTEGER || patch > Number.MAX_SAFE_INTEGER) return null;
    const pre = m[4] === undefined ? [] : m[4].split(".").map(toPreId);
    return { major, minor, patch, pre };
  }
  const p = PARTIAL.exec(str);
  if (p === null) return null;
  // Partial versions follow the same no-leading-zero rule as full ones.
  if (!/^(0|[1-9]\d*)$/.test(p[1]) || (p[2] !== undefined && !/^(0|[1-9]\d*)$/.test(p[2]))) return null;
  return { major: Number(p[1]), minor: p[2] === undefined ? 0 : Number(p[2]), patch: 0, pre: [] };
}

function toPreId(id: string): string | number {
  if (/^\d+$/.test(id)) {
    const n = Number(id);
    if (n <= Number.MAX_SAFE_INTEGER) return n;
  }
  return id;
}

function cmp(a: number | string, b: number | string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

/** Orders two versions by semver 2.0.0 precedence (build metadata ignored): -1, 0 or 1. */
export function compareSemVer(a: SemVer, b: SemVer): number {
  const main = cmp(a.major, b.major) || cmp(a.minor, b.minor) || cmp(a.patch, b.patch);
  if (main !== 0) return main;
  // A version without prerelease ranks above one with.
  if (a.pre.length === 0 || b.pre.length === 0) return a.pre.length === 0 ? (b.pre.length === 0 ? 0 : 1) : -1;
  const n = Math.max(a.pre.length, b.pre.length);
  for (let i = 0; i < n; i++) {
    if (i >= a.pre.length) return -1;
    if (i >= b.pre.length) return 1;
    const x = a.pre[i];
    const y = b.pre[i];
    if (x === y) continue;
    const xn = typeof x === "number";
    const yn = typeof y === "number";
    if (xn && !yn) return -1;
    if (!xn && yn) return 1;
    return cmp(x, y);
  }
  return 0;
}

/**
 * flagd's `sem_ver` operator: `[version, op, version]` with op one of `= != < <= > >= ^ ~`.
 * Returns null when the arguments are not usable, as flagd's custom operators do.
 */
export function semVerOperator(args: readonly unknown[]): boolean | null {
  if (args.length !== 3) return null;
  const a = parseSemVer(args[0]);
  const b = parseSemVer(args[2]);
  if (a === null || b === null) return null;
  switch (String(args[1])) {
    case "=":
      return compareSemVer(a, b) === 0;
    case "!=":
      return compareSemVer(a, b) !== 0;
    case "<":
      return compareSemVer(a, b) < 0;
    case "<=":
      return compareSemVer(a, b) <= 0;
    case ">":
      return compareSemVer(a, b) > 0;
    case ">=":
      return compareSemVer(a, b) >= 0;
    case "^":
      return a.major === b.major;
    case "~":
      return a.major === b.major && a.minor === b.minor;
    default:
      return null;
  }
}

/** The operators `sem_ver` accepts, for validation. */
export const SEMVER_OPERATORS: ReadonlySet<string> = new Set(["=", "!=", "<", "<=", ">", ">=", "^", "~"]);

// --- the operator ---------------------------------------------------------------------------

export function compileSemVer(c: OperatorCall): Node {
  const { raw, path, scope, state, issue, compileArgs, argsFn, argList } = c;
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
