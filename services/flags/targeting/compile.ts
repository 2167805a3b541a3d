/**
 * Vane's targeting model → flagd's JSON Logic. Rules become one `if` chain
 * (`{"if": [cond1, outcome1, cond2, outcome2, …, else]}`), conditions are AND-ed, segments are
 * `{"$ref": "segment:<key>"}` into `$evaluators`, rollouts are `fractional`. The exact shapes
 * emitted here are what targeting-import.ts recognises, so a round trip keeps the structure.
 * See docs/flags.md for the mapping table.
 */
import { toJson } from "@bufbuild/protobuf";
import { ValueSchema, type Value } from "@bufbuild/protobuf/wkt";
import { type Condition, type LayerCondition, Operator, type Outcome, type Rule, type Rollout } from "#gen/vane/flags/v1/flags_pb.js";
import type { JsonValue } from "#engine";

/** What `$ref` names look like for segments: `segment:<key>`, with `.` written as `~`. */
export const SEGMENT_REF_PREFIX = "segment:";

/**
 * The `$evaluators` name of a segment. flagd (Go) substitutes references with a regular expression
 * built from the name, so the name must be free of regex metacharacters: `.` becomes `~` (which
 * segment keys cannot contain, so the mapping is reversible).
 */
export function segmentRefName(key: string): string {
  return SEGMENT_REF_PREFIX + key.replaceAll(".", "~");
}

/** The segment key behind a `$ref` name written by {@link segmentRefName}, if it is one. */
export function segmentKeyFromRef(name: string): string | undefined {
  if (!name.startsWith(SEGMENT_REF_PREFIX)) return undefined;
  return name.slice(SEGMENT_REF_PREFIX.length).replaceAll("~", ".");
}

/** Options of the compilers below. */
export interface CompileOptions {
  /**
   * Emit Vane's extension operators (`regex_match` for MATCHES), which the engine evaluates only
   * when compiling with `extensions: true`: for snapshots, never for flagd files.
   */
  extensions?: boolean;
}

/** Thrown for targeting flagd's dialect cannot express (regular expressions). */
export class NotExpressibleError extends Error {
  constructor(
    readonly path: string,
    message: string,
  ) {
    super(`${path}: ${message}`);
    this.name = "NotExpressibleError";
  }
}

/** The targeting key, as every rollout without `bucket_by` reads it. */
export const TARGETING_KEY_VAR = { var: "targetingKey" } as const;

/**
 * The guard of a rollout bucketed by the targeting key: true exactly when flagd's `fractional`
 * would find a bucketing value (it needs a JS-truthy targeting key), so a unit without one falls
 * through to the next rule instead of ending the evaluation.
 */
export const TARGETING_KEY_GUARD: JsonValue = { "!": { in: [TARGETING_KEY_VAR, [null, "", 0, false]] } };

/** The guard of a rollout bucketed by `attribute`: the attribute is present and not null. */
export function attributeGuard(attribute: string): JsonValue {
  return { "!==": [{ var: attribute }, null] };
}

/**
 * A comparison that only a present attribute can satisfy. JSON Logic compares a missing attribute
 * (null) as 0, so `age < 18` would match every context without an age; people who write that rule
 * mean "known to be under 18".
 */
export function presentAnd(attribute: string, comparison: JsonValue): JsonValue {
  return { and: [attributeGuard(attribute), comparison] };
}

/** The `$flagd.flagKey` variable: the default rollout seed. */
export const FLAG_KEY_VAR = { var: "$flagd.flagKey" } as const;

const json = (v: Value | undefined): JsonValue => (v ? (toJson(ValueSchema, v) as JsonValue) : null);

/** Unix seconds of an RFC 3339 date (the operand of BEFORE/AFTER). */
export function unixSeconds(rfc3339: string): number {
  return Date.parse(rfc3339) / 1000;
}

const semverOps: Partial<Record<Operator, string>> = {
  [Operator.SEMVER_EQUAL]: "=",
  [Operator.SEMVER_NOT_EQUAL]: "!=",
  [Operator.SEMVER_LESS_THAN]: "<",
  [Operator.SEMVER_LESS_THAN_OR_EQUAL]: "<=",
  [Operator.SEMVER_GREATER_THAN]: ">",
  [Operator.SEMVER_GREATER_THAN_OR_EQUAL]: ">=",
  [Operator.SEMVER_TILDE]: "~",
  [Operator.SEMVER_CARET]: "^",
};
/** sem_ver operator text → Vane operator. */
export const SEMVER_OPERATOR_OF: Readonly<Record<string, Operator>> = Object.fromEntries(
  Object.entries(semverOps).map(([op, text]) => [text, Number(op) as Operator]),
);

const numericOps: Partial<Record<Operator, string>> = {
  [Operator.LESS_THAN]: "<",
  [Operator.LESS_THAN_OR_EQUAL]: "<=",
  [Operator.GREATER_THAN]: ">",
  [Operator.GREATER_THAN_OR_EQUAL]: ">=",
};
/** Numeric comparison text → Vane operator. */
export const NUMERIC_OPERATOR_OF: Readonly<Record<string, Operator>> = Object.fromEntries(
  Object.entries(numericOps).map(([op, text]) => [text, Number(op) as Operator]),
);

/** One condition as JSON Logic; `path` names it in errors. */
export function compileCondition(c: Condition, path: string, options: CompileOptions = {}): JsonValue {
  switch (c.kind.case) {
    case "segment": {
      const ref = { $ref: segmentRefName(c.kind.value.segmentKey) };
      return c.kind.value.negate ? { "!": ref } : ref;
    }
    case "jsonLogic":
      return json(c.kind.value);
    case "layer":
      return compileLayer(c.kind.value);
    case "attribute": {
      const { attribute, operator, values } = c.kind.value;
      const v = { var: attribute };
      const first = json(values[0]);
      switch (operator) {
        case Operator.EQUALS:
          return { "===": [v, first] };
        case Operator.NOT_EQUALS:
          return { "!==": [v, first] };
        case Operator.IN:
          return { in: [v, values.map(json)] };
        case Operator.NOT_IN:
          return { "!": { in: [v, values.map(json)] } };
        case Operator.CONTAINS:
          return { in: [first, v] };
        case Operator.STARTS_WITH:
          return { starts_with: [v, first] };
        case Operator.ENDS_WITH:
          return { ends_with: [v, first] };
        case Operator.LESS_THAN:
        case Operator.LESS_THAN_OR_EQUAL:
        case Operator.GREATER_THAN:
        case Operator.GREATER_THAN_OR_EQUAL:
          return presentAnd(attribute, { [numericOps[operator]!]: [v, first] });
        case Operator.BEFORE:
          return presentAnd(attribute, { "<": [v, unixSeconds(String(first))] });
        case Operator.AFTER:
          return presentAnd(attribute, { ">=": [v, unixSeconds(String(first))] });
        case Operator.MATCHES: {
          if (!options.extensions)
            throw new NotExpressibleError(`${path}.attribute.operator`, "regular expressions (MATCHES) have no equivalent in flagd's JSON Logic");
          const flags = values.length > 1 ? String(json(values[1])) : "";
          return { regex_match: [v, String(first), ...(flags ? [flags] : [])] };
        }
        default: {
          const text = semverOps[operator];
          if (text) return { sem_ver: [v, text, first] };
          throw new NotExpressibleError(`${path}.attribute.operator`, `unknown operator ${operator}`);
        }
      }
    }
    default:
      throw new NotExpressibleError(path, "a condition needs an attribute, a segment or json_logic");
  }
}

/** Buckets in a layer: every experiment of the layer hashes the same value, so slices never overlap. */
export const LAYER_BUCKETS = 10_000;

/**
 * A layer slice as JSON Logic: `fractional` over "layer:<key>/<unit>" with total weight 10,000
 * puts each unit in the same bucket for every experiment of the layer; the unit matches when its
 * bucket is in [start, end). Units without the bucketing attribute never match.
 */
export function compileLayer(l: LayerCondition): JsonValue {
  const attribute = l.bucketBy || "targetingKey";
  const slice = {
    fractional: [{ cat: [`layer:${l.layerKey}/`, { var: attribute }] }, ["before", l.start], ["in", l.end - l.start], ["after", LAYER_BUCKETS - l.end]],
  };
  return { and: [{ "!!": { var: attribute } }, { "==": [slice, "in"] }] };
}

/** The experiment a flag's rules assign, if any (the snapshot's `experimentId` metadata). */
export function experimentOf(rules: readonly Rule[]): string | undefined {
  for (const r of rules) if (r.outcome?.kind.case === "rollout" && r.outcome.kind.value.experimentId) return r.outcome.kind.value.experimentId;
  return undefined;
}

/** The breakdown dimensions of the experiment a flag's rules assign (the snapshot's `experimentDimensions` metadata). */
export function experimentDimensionsOf(rules: readonly Rule[]): readonly string[] {
  for (const r of rules) if (r.outcome?.kind.case === "rollout" && r.outcome.kind.value.experimentId) return r.outcome.kind.value.exposureDimensions;
  return [];
}

/** Layer keys of holdouts: `holdout:<holdout id>` (the analytics service writes these rules). */
export const HOLDOUT_LAYER_PREFIX = "holdout:";

/**
 * The holdout a flag's rules hold units out of, if any: a rule whose only condition is the slice
 * [0, buckets) of the layer `holdout:<id>` (the snapshot's `holdoutId` and `holdoutBuckets`
 * metadata, from which the evaluator tells held-out units for their exposures).
 */
export function holdoutOf(rules: readonly Rule[]): { id: string; buckets: number } | undefined {
  for (const r of rules) {
    const c = r.conditions.length === 1 ? r.conditions[0].kind : undefined;
    if (c?.case === "layer" && c.value.layerKey.startsWith(HOLDOUT_LAYER_PREFIX) && c.value.start === 0 && !c.value.bucketBy)
      return { id: c.value.layerKey.slice(HOLDOUT_LAYER_PREFIX.length), buckets: c.value.end };
  }
  return undefined;
}

/** The `fractional` expression of a rollout and the guard its rule needs. */
export function compileRollout(r: Rollout): { logic: JsonValue; guard: JsonValue } {
  const buckets: JsonValue[] = r.variants.map((w) => [w.variant, w.weight]);
  if (!r.bucketBy && !r.seed) return { logic: { fractional: buckets }, guard: TARGETING_KEY_GUARD };
  const seed: JsonValue = r.seed ? r.seed : FLAG_KEY_VAR;
  const attribute = r.bucketBy || "targetingKey";
  return {
    logic: { fractional: [{ cat: [seed, { var: attribute }] }, ...buckets] },
    guard: r.bucketBy ? attributeGuard(attribute) : TARGETING_KEY_GUARD,
  };
}

function compileOutcome(o: Outcome | undefined, path: string): { logic: JsonValue; guard?: JsonValue } {
  switch (o?.kind.case) {
    case "variant":
      return { logic: o.kind.value };
    case "rollout":
      return compileRollout(o.kind.value);
    case "jsonLogic":
      return { logic: json(o.kind.value) };
    default:
      throw new NotExpressibleError(`${path}.outcome`, "a rule needs an outcome");
  }
}

/** AND of conditions: none → null, one → itself, more → `and`. */
function conjunction(conds: JsonValue[]): JsonValue | null {
  if (conds.length === 0) return null;
  return conds.length === 1 ? conds[0] : { and: conds };
}

/**
 * The rules as one JSON Logic `if` chain; null when there are none (static flag). A last rule
 * without conditions (and without a guard) becomes the chain's else branch; an unconditional rule
 * elsewhere gets the condition `true`.
 */
export function compileRules(rules: readonly Rule[], path = "rules", options: CompileOptions = {}): JsonValue | null {
  if (rules.length === 0) return null;
  const parts: { cond: JsonValue | null; outcome: JsonValue }[] = rules.map((rule, i) => {
    const at = `${path}[${i}]`;
    const conds = rule.conditions.map((c, j) => compileCondition(c, `${at}.conditions[${j}]`, options));
    const { logic, guard } = compileOutcome(rule.outcome, at);
    if (guard !== undefined) conds.push(guard);
    return { cond: conjunction(conds), outcome: logic };
  });
  let otherwise: JsonValue = null;
  if (parts.at(-1)!.cond === null) otherwise = parts.pop()!.outcome;
  if (parts.length === 0) return { if: [true, otherwise, null] };
  return { if: [...parts.flatMap((p) => [p.cond ?? true, p.outcome]), otherwise] };
}

/** A segment's definition, as the compiler needs it. */
export interface SegmentLike {
  conditions: readonly Condition[];
  includedKeys: readonly string[];
  excludedKeys: readonly string[];
}

/**
 * A segment as JSON Logic, always an object (flagd splices `$evaluators` bodies into the
 * referencing object): not excluded, and either included or matching every condition.
 */
export function compileSegment(s: SegmentLike, path = "segment", options: CompileOptions = {}): JsonValue {
  const included: JsonValue | null = s.includedKeys.length > 0 ? { in: [TARGETING_KEY_VAR, [...s.includedKeys]] } : null;
  const conds = conjunction(s.conditions.map((c, i) => compileCondition(c, `${path}.conditions[${i}]`, options)));
  const member: JsonValue = included && conds ? { or: [included, conds] } : (included ?? conds ?? { in: [TARGETING_KEY_VAR, []] });
  if (s.excludedKeys.length === 0) return member;
  return { and: [{ "!": { in: [TARGETING_KEY_VAR, [...s.excludedKeys]] } }, member] };
}
