/**
 * Write-time validation of targeting: rules against the flag's variants and type and the
 * project's segments, each problem with its exact path (`rules[2].outcome.rollout.variants[1].variant`).
 */
import { toJson } from "@bufbuild/protobuf";
import { ValueSchema, type Value } from "@bufbuild/protobuf/wkt";
import { type Condition, FlagType, Operator, type Rule, type Variant } from "#gen/vane/flags/v1/flags_pb.js";
import { compileJsonLogic, MAX_TOTAL_WEIGHT, parseSemVer, type JsonValue } from "#engine";
import { invalidArgument } from "#lib/process/errors.ts";
import { patternProblem } from "./regex-pattern.ts";
import { depthIssue } from "../limits.ts";

/** A problem at a path. */
export interface Issue {
  path: string;
  message: string;
}

/** What targeting is checked against. */
export interface TargetingScope {
  /** Variant keys of the flag (empty inside a segment: no outcomes there). */
  variants: ReadonlySet<string>;
  /** Segment keys of the project; undefined where segment conditions are not allowed (in segments). */
  segments?: ReadonlySet<string>;
}

const json = (v: Value): JsonValue => toJson(ValueSchema, v) as JsonValue;
const isObject = (v: unknown): v is Record<string, unknown> => typeof v === "object" && v !== null && !Array.isArray(v);

const kindOf = (v: JsonValue): string => (v === null ? "null" : Array.isArray(v) ? "list" : typeof v);

/** Throws INVALID_ARGUMENT naming the first issue (and how many more). */
export function throwIssues(issues: readonly Issue[]): void {
  if (issues.length === 0) return;
  const more = issues.length > 1 ? ` (and ${issues.length - 1} more)` : "";
  throw invalidArgument(`${issues[0].path}: ${issues[0].message}${more}`);
}

/** Checks the variants of a flag of `type`: unique keys, values of the type. */
export function validateVariants(type: FlagType, variants: readonly Variant[], path = "variants"): Issue[] {
  const issues: Issue[] = [];
  const want = { [FlagType.BOOLEAN]: "boolean", [FlagType.STRING]: "string", [FlagType.NUMBER]: "number", [FlagType.OBJECT]: "object" }[type as 1 | 2 | 3 | 4];
  const seen = new Set<string>();
  variants.forEach((v, i) => {
    if (seen.has(v.key)) issues.push({ path: `${path}[${i}].key`, message: `duplicate variant "${v.key}"` });
    seen.add(v.key);
    const value = v.value ? json(v.value) : null;
    const deep = depthIssue(value, `${path}[${i}].value`);
    if (deep) return void issues.push(deep);
    const kind = isObject(value) ? "object" : typeof value;
    if (value === null || Array.isArray(value) || kind !== want || (typeof value === "number" && !Number.isFinite(value))) {
      issues.push({ path: `${path}[${i}].value`, message: `a ${want} flag needs ${want} variants, got ${kindOf(value)}` });
    }
  });
  return issues;
}

/** Walks JSON Logic for `$ref`s (not allowed in hand-written json_logic: use segment conditions). */
function findRef(v: JsonValue, path: string): string | undefined {
  if (Array.isArray(v)) {
    for (let i = 0; i < v.length; i++) {
      const p = findRef(v[i], `${path}[${i}]`);
      if (p) return p;
    }
  } else if (isObject(v)) {
    for (const [k, x] of Object.entries(v)) {
      if (k === "$ref") return `${path}.$ref`;
      const p = findRef(x as JsonValue, `${path}.${k}`);
      if (p) return p;
    }
  }
  return undefined;
}

function checkJsonLogic(logic: JsonValue, path: string, issues: Issue[]): ReturnType<typeof compileJsonLogic> | undefined {
  const deep = depthIssue(logic, path);
  if (deep) {
    issues.push(deep);
    return undefined;
  }
  const ref = findRef(logic, path);
  if (ref) {
    issues.push({ path: ref, message: "json_logic cannot use $ref; use a segment condition" });
    return undefined;
  }
  const compiled = compileJsonLogic(logic, path, { flagKey: "" });
  for (const i of compiled.issues) issues.push({ path: i.path, message: i.message });
  return compiled;
}

const single = new Set([
  Operator.EQUALS,
  Operator.NOT_EQUALS,
  Operator.CONTAINS,
  Operator.STARTS_WITH,
  Operator.ENDS_WITH,
  Operator.LESS_THAN,
  Operator.LESS_THAN_OR_EQUAL,
  Operator.GREATER_THAN,
  Operator.GREATER_THAN_OR_EQUAL,
  Operator.BEFORE,
  Operator.AFTER,
  Operator.SEMVER_EQUAL,
  Operator.SEMVER_NOT_EQUAL,
  Operator.SEMVER_LESS_THAN,
  Operator.SEMVER_LESS_THAN_OR_EQUAL,
  Operator.SEMVER_GREATER_THAN,
  Operator.SEMVER_GREATER_THAN_OR_EQUAL,
  Operator.SEMVER_TILDE,
  Operator.SEMVER_CARET,
]);
const RFC3339 = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:\d{2})$/i;

/** Checks conditions (of a rule or a segment). */
export function validateConditions(conditions: readonly Condition[], scope: TargetingScope, path: string): Issue[] {
  const issues: Issue[] = [];
  conditions.forEach((c, i) => {
    const at = `${path}[${i}]`;
    switch (c.kind.case) {
      case "segment": {
        if (!scope.segments) issues.push({ path: `${at}.segment`, message: "segment conditions cannot refer to segments" });
        else if (!scope.segments.has(c.kind.value.segmentKey)) {
          issues.push({ path: `${at}.segment.segment_key`, message: `unknown segment "${c.kind.value.segmentKey}"` });
        }
        return;
      }
      case "jsonLogic":
        checkJsonLogic(json(c.kind.value), `${at}.json_logic`, issues);
        return;
      case "layer": {
        const { start, end } = c.kind.value;
        if (!(start < end)) issues.push({ path: `${at}.layer.end`, message: `must be greater than start (${start})` });
        return;
      }
      case "attribute": {
        const { operator, values } = c.kind.value;
        const base = `${at}.attribute`;
        if (operator === Operator.MATCHES) {
          // [pattern] or [pattern, flags]
          const [pattern, flags] = values.map(json);
          if (values.length < 1 || values.length > 2)
            issues.push({ path: `${base}.values`, message: `MATCHES takes a pattern and optional flags, got ${values.length} values` });
          else if (typeof pattern !== "string") issues.push({ path: `${base}.values[0]`, message: `MATCHES needs a pattern string, got ${kindOf(pattern)}` });
          else if (flags !== undefined && typeof flags !== "string")
            issues.push({ path: `${base}.values[1]`, message: `MATCHES flags must be a string, got ${kindOf(flags)}` });
          else {
            const problem = patternProblem(pattern, flags);
            if (problem) issues.push({ path: `${base}.values[${problem.field === "pattern" ? 0 : 1}]`, message: problem.message });
          }
          return;
        }
        if (!(operator in Operator) || operator === Operator.UNSPECIFIED) {
          issues.push({ path: `${base}.operator`, message: `unknown operator ${operator}` });
          return;
        }
        if (values.length === 0) {
          issues.push({ path: `${base}.values`, message: "needs at least one value" });
          return;
        }
        if (single.has(operator) && values.length !== 1) {
          issues.push({ path: `${base}.values`, message: `${Operator[operator]} takes exactly one value, got ${values.length}` });
          return;
        }
        values.forEach((raw, j) => {
          const v = json(raw);
          const vp = `${base}.values[${j}]`;
          const bad = (want: string) => issues.push({ path: vp, message: `${Operator[operator]} needs ${want}, got ${kindOf(v)}` });
          switch (operator) {
            case Operator.EQUALS:
            case Operator.NOT_EQUALS:
            case Operator.IN:
            case Operator.NOT_IN:
              if (typeof v !== "string" && typeof v !== "number" && typeof v !== "boolean") bad("a string, number or boolean");
              break;
            case Operator.CONTAINS:
            case Operator.STARTS_WITH:
            case Operator.ENDS_WITH:
              if (typeof v !== "string") bad("a string");
              break;
            case Operator.LESS_THAN:
            case Operator.LESS_THAN_OR_EQUAL:
            case Operator.GREATER_THAN:
            case Operator.GREATER_THAN_OR_EQUAL:
              if (typeof v !== "number" || !Number.isFinite(v)) bad("a number");
              break;
            case Operator.BEFORE:
            case Operator.AFTER:
              if (typeof v !== "string" || !RFC3339.test(v) || Number.isNaN(Date.parse(v))) bad("an RFC 3339 date (2026-01-31T00:00:00Z)");
              break;
            default:
              if (typeof v !== "string" || parseSemVer(v) === null) bad("a semantic version (1.2.3)");
          }
        });
        return;
      }
      default:
        issues.push({ path: at, message: "a condition needs attribute, segment or json_logic" });
    }
  });
  return issues;
}

/** Checks rules against the flag's variants and the project's segments. */
export function validateRules(rules: readonly Rule[], scope: TargetingScope, path = "rules"): Issue[] {
  const issues: Issue[] = [];
  const ids = new Set<string>();
  const known = [...scope.variants].join(", ");
  rules.forEach((rule, i) => {
    const at = `${path}[${i}]`;
    if (rule.id) {
      if (ids.has(rule.id)) issues.push({ path: `${at}.id`, message: `duplicate rule id "${rule.id}"` });
      ids.add(rule.id);
    }
    issues.push(...validateConditions(rule.conditions, scope, `${at}.conditions`));
    const o = rule.outcome;
    switch (o?.kind.case) {
      case "variant":
        if (!scope.variants.has(o.kind.value))
          issues.push({ path: `${at}.outcome.variant`, message: `unknown variant "${o.kind.value}"; variants are ${known}` });
        break;
      case "rollout": {
        const r = o.kind.value;
        let total = 0;
        r.variants.forEach((w, j) => {
          const wp = `${at}.outcome.rollout.variants[${j}]`;
          if (!scope.variants.has(w.variant)) issues.push({ path: `${wp}.variant`, message: `unknown variant "${w.variant}"; variants are ${known}` });
          if (w.weight < 0) issues.push({ path: `${wp}.weight`, message: "weights cannot be negative" });
          total += Math.max(0, w.weight);
        });
        if (r.variants.length === 0) issues.push({ path: `${at}.outcome.rollout.variants`, message: "a rollout needs at least one variant" });
        else if (total <= 0)
          issues.push({ path: `${at}.outcome.rollout.variants`, message: "the weights sum to 0; give at least one variant a positive weight" });
        else if (total > MAX_TOTAL_WEIGHT)
          issues.push({ path: `${at}.outcome.rollout.variants`, message: `the weights sum to ${total}, more than ${MAX_TOTAL_WEIGHT}` });
        break;
      }
      case "jsonLogic": {
        const compiled = checkJsonLogic(json(o.kind.value), `${at}.outcome.json_logic`, issues);
        for (const lit of compiled?.resultLiterals ?? []) {
          if (!scope.variants.has(String(lit.value)))
            issues.push({ path: lit.path, message: `can return "${String(lit.value)}", which is not a variant (${known})` });
        }
        break;
      }
      default:
        issues.push({ path: `${at}.outcome`, message: "a rule needs an outcome: a variant, a rollout or json_logic" });
    }
  });
  return issues;
}
