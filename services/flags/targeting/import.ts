/**
 * flagd's flag-definition format → Vane's model. JSON Logic is mapped back to structured rules
 * where the shape is recognised (what targeting-compile.ts emits, and common hand-written
 * if-chains over and / === / in / starts_with / ends_with / sem_ver / comparisons / fractional);
 * anything else is kept verbatim as a `json_logic` condition or outcome, so outcomes never change.
 * `$evaluators` become segments when the caller allows it, else they are inlined.
 */
import { create, fromJson } from "@bufbuild/protobuf";
import { ValueSchema } from "@bufbuild/protobuf/wkt";
import {
  type Condition,
  ConditionSchema,
  FlagType,
  Operator,
  type Rule,
  RuleSchema,
  type Variant,
  VariantSchema,
  type WeightedVariant,
  WeightedVariantSchema,
} from "#gen/vane/flags/v1/flags_pb.js";
import { MAX_TOTAL_WEIGHT, parseSemVer, type FlagDefinition, type FlagSetDefinition, type JsonValue, type MetadataValue } from "#engine";
import { variantKind } from "#engine";
import { VANE_FLAG_METADATA, VANE_SET_METADATA, withoutVaneKeys } from "../environment-config.ts";
import {
  attributeGuard,
  compileSegment,
  FLAG_KEY_VAR,
  NUMERIC_OPERATOR_OF,
  SEMVER_OPERATOR_OF,
  segmentKeyFromRef,
  TARGETING_KEY_GUARD,
  type SegmentLike,
} from "./compile.ts";

/** A segment made from an `$evaluators` entry. */
export interface ImportedSegment extends SegmentLike {
  key: string;
  /** The evaluator's name in the file. */
  evaluatorName: string;
  conditions: Condition[];
  includedKeys: string[];
  excludedKeys: string[];
}

/** A flag of the file in Vane's model. */
export interface ImportedFlag {
  key: string;
  type: FlagType;
  variants: Variant[];
  enabled: boolean;
  /** Empty: the caller's code default. */
  defaultVariant: string;
  rules: Rule[];
  /** The flag's flagd metadata, without the keys Vane writes itself. */
  metadata: Record<string, MetadataValue>;
}

/** A whole file in Vane's model. */
export interface ImportedFlagSet {
  flags: ImportedFlag[];
  segments: ImportedSegment[];
  /** The file's flag-set metadata without Vane's own keys; undefined when the file has none. */
  metadata?: Record<string, MetadataValue>;
}

/** Options for {@link importFlagSet}. */
export interface ImportOptions {
  /**
   * May this evaluator become the project segment `key` with this compiled form? (No when a
   * different segment with that key exists: the evaluator is inlined instead.)
   */
  segmentAllowed?(key: string, compiled: JsonValue): boolean;
}

/** The contract's key rules (flag_service.proto CreateFlagRequest.key, flags.proto Variant.key). */
export const FLAG_KEY = /^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$/;
export const VARIANT_KEY = /^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$/;
const SEGMENT_KEY = FLAG_KEY;
const isObject = (v: unknown): v is Record<string, JsonValue> => typeof v === "object" && v !== null && !Array.isArray(v);
const isPrimitive = (v: unknown): v is string | number | boolean =>
  typeof v === "string" || typeof v === "boolean" || (typeof v === "number" && Number.isFinite(v));

/** JSON with object keys sorted, for structural comparison. */
export function canonicalJson(v: unknown): string {
  if (Array.isArray(v)) return `[${v.map(canonicalJson).join(",")}]`;
  if (isObject(v)) {
    return `{${Object.keys(v)
      .sort()
      .map((k) => `${JSON.stringify(k)}:${canonicalJson(v[k])}`)
      .join(",")}}`;
  }
  return JSON.stringify(v);
}
const same = (a: unknown, b: unknown) => canonicalJson(a) === canonicalJson(b);

/** The single operator of a JSON Logic operation, with its raw arguments. */
function op(v: JsonValue): [string, JsonValue] | undefined {
  if (!isObject(v)) return undefined;
  const keys = Object.keys(v);
  return keys.length === 1 ? [keys[0], v[keys[0]]] : undefined;
}

/** The attribute of `{"var": "a"}` / `{"var": ["a"]}`. */
function varName(v: JsonValue): string | undefined {
  const o = op(v);
  if (!o || o[0] !== "var") return undefined;
  const arg = Array.isArray(o[1]) && o[1].length === 1 ? o[1][0] : o[1];
  return typeof arg === "string" && arg.length > 0 && arg.length <= 200 ? arg : undefined;
}

const value = (v: JsonValue) => fromJson(ValueSchema, v);

/** Replaces every `$ref` by its evaluator (recursively). */
function inline(v: JsonValue, evaluators: Readonly<Record<string, JsonValue>>): JsonValue {
  if (Array.isArray(v)) return v.map((x) => inline(x, evaluators));
  if (!isObject(v)) return v;
  const o = op(v);
  if (o && o[0] === "$ref" && typeof o[1] === "string" && o[1] in evaluators) return inline(evaluators[o[1]], evaluators);
  return Object.fromEntries(Object.entries(v).map(([k, x]) => [k, inline(x, evaluators)]));
}

interface Mapper {
  evaluators: Readonly<Record<string, JsonValue>>;
  /** Evaluator name → segment key, for evaluators that became segments. */
  segments: ReadonlyMap<string, string>;
}

const jsonLogicCondition = (x: JsonValue, m: Mapper): Condition =>
  create(ConditionSchema, { kind: { case: "jsonLogic", value: value(inline(x, m.evaluators)) } });
const attribute = (name: string, operator: Operator, values: JsonValue[]): Condition =>
  create(ConditionSchema, { kind: { case: "attribute", value: { attribute: name, operator, values: values.map(value) } } });

/** The segment behind `{"$ref": name}`, if that evaluator became one. */
function refSegment(x: JsonValue, m: Mapper): string | undefined {
  const o = op(x);
  return o && o[0] === "$ref" && typeof o[1] === "string" ? m.segments.get(o[1]) : undefined;
}

/** One conjunct as a structured condition where the shape is exact, else json_logic. */
export function mapCondition(x: JsonValue, m: Mapper): Condition {
  const o = op(x);
  if (!o) return jsonLogicCondition(x, m);
  const [name, raw] = o;
  const args = Array.isArray(raw) ? raw : undefined;
  const seg = refSegment(x, m);
  if (seg) return create(ConditionSchema, { kind: { case: "segment", value: { segmentKey: seg } } });
  switch (name) {
    case "!": {
      const inner = args ? (args.length === 1 ? args[0] : undefined) : raw;
      if (inner === undefined) break;
      const negSeg = refSegment(inner, m);
      if (negSeg) return create(ConditionSchema, { kind: { case: "segment", value: { segmentKey: negSeg, negate: true } } });
      const io = op(inner);
      if (io && io[0] === "in" && Array.isArray(io[1]) && io[1].length === 2) {
        const a = varName(io[1][0]);
        const list = io[1][1];
        if (a && Array.isArray(list) && list.length > 0 && list.every(isPrimitive)) return attribute(a, Operator.NOT_IN, list);
      }
      break;
    }
    case "===":
    case "!==": {
      if (!args || args.length !== 2) break;
      const [l, r] = args;
      const a = varName(l) ?? varName(r);
      const lit = varName(l) ? r : l;
      if (a && isPrimitive(lit)) return attribute(a, name === "===" ? Operator.EQUALS : Operator.NOT_EQUALS, [lit]);
      break;
    }
    case "in": {
      if (!args || args.length !== 2) break;
      const [needle, hay] = args;
      const a = varName(needle);
      if (a && Array.isArray(hay) && hay.length > 0 && hay.every(isPrimitive)) return attribute(a, Operator.IN, hay);
      const h = varName(hay);
      if (h && typeof needle === "string") return attribute(h, Operator.CONTAINS, [needle]);
      break;
    }
    case "starts_with":
    case "ends_with": {
      if (!args || args.length !== 2) break;
      const a = varName(args[0]);
      if (a && typeof args[1] === "string") return attribute(a, name === "starts_with" ? Operator.STARTS_WITH : Operator.ENDS_WITH, [args[1]]);
      break;
    }
    case "and": {
      const g = guardedComparison(x);
      if (g) return attribute(g.attribute, g.operator, [g.operand]);
      break;
    }
    case "sem_ver": {
      if (!args || args.length !== 3) break;
      const a = varName(args[0]);
      const operator = typeof args[1] === "string" ? SEMVER_OPERATOR_OF[args[1]] : undefined;
      if (a && operator !== undefined && typeof args[2] === "string" && parseSemVer(args[2]) !== null) return attribute(a, operator, [args[2]]);
      break;
    }
  }
  return jsonLogicCondition(x, m);
}

/**
 * A numeric comparison guarded by presence, as targeting-compile.ts writes it. A bare comparison
 * is not one: it matches a missing attribute (compared as 0), Vane's numeric operators do not, so
 * it stays json_logic.
 */
function guardedComparison(x: JsonValue): { attribute: string; operator: Operator; operand: number } | undefined {
  const o = op(x);
  if (!o || o[0] !== "and" || !Array.isArray(o[1]) || o[1].length !== 2) return undefined;
  const [guard, cmp] = o[1];
  const c = op(cmp);
  if (!c || !Object.hasOwn(NUMERIC_OPERATOR_OF, c[0]) || !Array.isArray(c[1]) || c[1].length !== 2) return undefined;
  const a = varName(c[1][0]);
  const n = c[1][1];
  if (!a || !same(guard, attributeGuard(a)) || typeof n !== "number" || !Number.isFinite(n)) return undefined;
  return { attribute: a, operator: NUMERIC_OPERATOR_OF[c[0]], operand: n };
}

/** The conjuncts of a rule condition: `true` → none, `and` → its arguments, else itself. */
function conjuncts(c: JsonValue): JsonValue[] {
  if (c === true) return [];
  if (guardedComparison(c)) return [c];
  const o = op(c);
  if (o && o[0] === "and" && Array.isArray(o[1]) && o[1].length > 0) return o[1];
  return [c];
}

/** A fractional outcome: its buckets and bucketing shape, when recognised. */
interface ParsedFractional {
  variants: WeightedVariant[];
  /** undefined: flagd's default (flag key + targeting key). */
  cat?: { seed: string; attribute: string };
}

function parseFractional(x: JsonValue, variantNames: ReadonlySet<string>): ParsedFractional | undefined {
  const o = op(x);
  if (!o || o[0] !== "fractional" || !Array.isArray(o[1]) || o[1].length === 0) return undefined;
  const args = o[1];
  let buckets = args;
  let cat: ParsedFractional["cat"];
  if (!Array.isArray(args[0])) {
    const c = op(args[0]);
    if (!c || c[0] !== "cat" || !Array.isArray(c[1]) || c[1].length !== 2) return undefined;
    const [s, a] = c[1];
    const attr = varName(a);
    if (!attr) return undefined;
    if (same(s, FLAG_KEY_VAR)) cat = { seed: "", attribute: attr };
    else if (typeof s === "string" && s.length > 0 && s.length <= 200) cat = { seed: s, attribute: attr };
    else return undefined;
    buckets = args.slice(1);
  }
  if (buckets.length === 0 || buckets.length > 100) return undefined;
  const variants: WeightedVariant[] = [];
  let total = 0;
  for (const b of buckets) {
    if (!Array.isArray(b) || b.length < 1 || b.length > 2 || typeof b[0] !== "string" || !variantNames.has(b[0])) return undefined;
    const w = b.length === 2 ? b[1] : 1;
    if (typeof w !== "number" || !Number.isInteger(w) || w > 2 ** 31 - 1) return undefined;
    const weight = Math.max(0, w);
    total += weight;
    variants.push(create(WeightedVariantSchema, { variant: b[0], weight }));
  }
  if (total <= 0 || total > MAX_TOTAL_WEIGHT) return undefined;
  return { variants, cat };
}

interface RawRule {
  conds: JsonValue[];
  outcome: JsonValue;
}

/** The if-chain of a targeting: (condition, outcome) pairs and the else branch (null: none). */
function flattenChain(t: JsonValue): { pairs: [JsonValue, JsonValue][]; otherwise: JsonValue } {
  const pairs: [JsonValue, JsonValue][] = [];
  let cur: JsonValue = t;
  for (;;) {
    const o = op(cur);
    if (!o || (o[0] !== "if" && o[0] !== "?:") || !Array.isArray(o[1]) || o[1].length < 2) break;
    const args = o[1];
    for (let i = 0; i + 1 < args.length; i += 2) pairs.push([args[i], args[i + 1]]);
    cur = args.length % 2 === 1 ? args[args.length - 1] : null;
    if (cur === null) return { pairs, otherwise: null };
  }
  if (pairs.length === 0) return { pairs, otherwise: t };
  return { pairs, otherwise: cur };
}

/** A flagd targeting as Vane rules with the same outcome for every context. */
export function targetingToRules(targeting: JsonValue | undefined, variantNames: ReadonlySet<string>, m: Mapper): Rule[] {
  if (targeting === undefined || targeting === null || (isObject(targeting) && Object.keys(targeting).length === 0)) return [];
  const { pairs, otherwise } = flattenChain(targeting);
  const raw: RawRule[] = pairs.map(([c, o]) => ({ conds: conjuncts(c), outcome: o }));
  if (otherwise !== null) raw.push({ conds: [], outcome: otherwise });
  return raw.map((r, i) => {
    const last = i === raw.length - 1;
    let conds = r.conds;
    let outcome: Rule["outcome"];
    const variant = isPrimitive(r.outcome) && variantNames.has(String(r.outcome)) ? String(r.outcome) : undefined;
    const frac = variant === undefined ? parseFractional(r.outcome, variantNames) : undefined;
    if (variant !== undefined) {
      outcome = { kind: { case: "variant", value: variant }, $typeName: "vane.flags.v1.Outcome" };
    } else if (frac) {
      const tail = conds.at(-1);
      let rollout: { bucketBy: string; seed: string } | undefined;
      if (!frac.cat) {
        // flagd's default bucketing: guarded as Vane emits it, or unguarded where nothing follows
        // (a unit without a targeting key then ends at the default either way).
        if (tail !== undefined && same(tail, TARGETING_KEY_GUARD)) {
          conds = conds.slice(0, -1);
          rollout = { bucketBy: "", seed: "" };
        } else if (last) rollout = { bucketBy: "", seed: "" };
      } else if (tail !== undefined && same(tail, attributeGuard(frac.cat.attribute))) {
        conds = conds.slice(0, -1);
        rollout = { bucketBy: frac.cat.attribute, seed: frac.cat.seed };
      } else if (tail !== undefined && frac.cat.attribute === "targetingKey" && frac.cat.seed && same(tail, TARGETING_KEY_GUARD)) {
        conds = conds.slice(0, -1);
        rollout = { bucketBy: "", seed: frac.cat.seed };
      }
      outcome = rollout
        ? {
            kind: {
              case: "rollout",
              value: { ...rollout, experimentId: "", exposureDimensions: [], variants: frac.variants, $typeName: "vane.flags.v1.Rollout" },
            },
            $typeName: "vane.flags.v1.Outcome",
          }
        : { kind: { case: "jsonLogic", value: value(inline(r.outcome, m.evaluators)) }, $typeName: "vane.flags.v1.Outcome" };
    } else {
      outcome = { kind: { case: "jsonLogic", value: value(inline(r.outcome, m.evaluators)) }, $typeName: "vane.flags.v1.Outcome" };
    }
    return create(RuleSchema, { id: `r${i + 1}`, conditions: conds.map((c) => mapCondition(c, m)), outcome });
  });
}

/** An `$evaluators` body as a segment: the shape compileSegment emits, else its conjuncts. */
export function parseSegmentBody(body: JsonValue, m: Mapper): Omit<ImportedSegment, "key" | "evaluatorName"> {
  let excludedKeys: string[] = [];
  let includedKeys: string[] = [];
  let member = body;
  const keyList = (x: JsonValue): string[] | undefined => {
    const o = op(x);
    if (!o || o[0] !== "in" || !Array.isArray(o[1]) || o[1].length !== 2 || varName(o[1][0]) !== "targetingKey") return undefined;
    const list = o[1][1];
    return Array.isArray(list) && list.every((k) => typeof k === "string") ? (list as string[]) : undefined;
  };
  const a = op(body);
  if (a && a[0] === "and" && Array.isArray(a[1]) && a[1].length === 2) {
    const not = op(a[1][0]);
    const ex = not && not[0] === "!" && !Array.isArray(not[1]) ? keyList(not[1]) : undefined;
    if (ex && ex.length > 0) {
      excludedKeys = ex;
      member = a[1][1];
    }
  }
  const or = op(member);
  let conds: JsonValue | null = member;
  if (or && or[0] === "or" && Array.isArray(or[1]) && or[1].length === 2) {
    const inc = keyList(or[1][0]);
    if (inc && inc.length > 0) {
      includedKeys = inc;
      conds = or[1][1];
    }
  } else {
    const inc = keyList(member);
    if (inc) {
      includedKeys = inc;
      conds = null;
    }
  }
  return { excludedKeys, includedKeys, conditions: conds === null ? [] : conjuncts(conds).map((c) => mapCondition(c, m)) };
}

/** A path step: `.key` where the key reads unambiguously, else `["key"]`. */
const step = (key: string) => (/^[A-Za-z0-9_-]+$/.test(key) ? `.${key}` : `[${JSON.stringify(key)}]`);

/**
 * Flag and variant keys of a file that break the contract's key rules, with their paths
 * (`flags["feature/new ui"]`, `flags.color.variants["dark red"]`): such keys could be imported
 * but never updated through the API, so the whole file is refused.
 */
export function keyIssues(def: FlagSetDefinition): { path: string; message: string }[] {
  const issues: { path: string; message: string }[] = [];
  const rule = "letters, digits, '_', '-' and '.', starting with a letter or digit";
  const entries: [string, string, FlagDefinition][] = Array.isArray(def.flags)
    ? def.flags.map((f, i) => [`flags[${i}]`, f.key ?? "", f])
    : Object.entries(def.flags).map(([k, f]) => [`flags${step(k)}`, k, f]);
  for (const [path, key, f] of entries) {
    if (!FLAG_KEY.test(key))
      issues.push({ path: Array.isArray(def.flags) ? `${path}.key` : path, message: `flag key ${JSON.stringify(key)} is invalid: at most 128 ${rule}` });
    for (const v of Object.keys(f.variants ?? {})) {
      if (!VARIANT_KEY.test(v)) issues.push({ path: `${path}.variants${step(v)}`, message: `variant key ${JSON.stringify(v)} is invalid: at most 64 ${rule}` });
    }
  }
  return issues;
}

function flagsOf(def: FlagSetDefinition): [string, FlagDefinition][] {
  return Array.isArray(def.flags) ? def.flags.map((f) => [f.key ?? "", f]) : Object.entries(def.flags);
}

const typeOf: Record<string, FlagType> = {
  boolean: FlagType.BOOLEAN,
  string: FlagType.STRING,
  number: FlagType.NUMBER,
  object: FlagType.OBJECT,
};

/** Maps a parsed, validated flag set (the engine's parseFlagdJson) into Vane's model. */
export function importFlagSet(def: FlagSetDefinition, options: ImportOptions = {}): ImportedFlagSet {
  const evaluators = def.$evaluators ?? {};
  const segments: ImportedSegment[] = [];
  const segmentOf = new Map<string, string>();
  // Segment bodies may not refer to segments: their own references are inlined.
  const inner: Mapper = { evaluators, segments: new Map() };
  for (const [name, body] of Object.entries(evaluators)) {
    const key = segmentKeyFromRef(name) ?? name;
    if (!SEGMENT_KEY.test(key) || segments.some((s) => s.key === key)) continue;
    const parsed = parseSegmentBody(inline(body, evaluators), inner);
    if (options.segmentAllowed && !options.segmentAllowed(key, compileSegment(parsed))) continue;
    segments.push({ key, evaluatorName: name, ...parsed });
    segmentOf.set(name, key);
  }
  const m: Mapper = { evaluators, segments: segmentOf };
  const flags = flagsOf(def).map(([key, f]): ImportedFlag => {
    const entries = Object.entries(f.variants);
    const kind = variantKind(entries[0]?.[1]) ?? "string";
    return {
      key,
      type: typeOf[kind],
      variants: entries.map(([k, v]) => create(VariantSchema, { key: k, value: value(v) })),
      enabled: f.state === "ENABLED",
      defaultVariant: f.defaultVariant ?? "",
      rules: targetingToRules(f.targeting, new Set(Object.keys(f.variants)), m),
      metadata: withoutVaneKeys(f.metadata, VANE_FLAG_METADATA),
    };
  });
  return { flags, segments, ...(def.metadata !== undefined ? { metadata: withoutVaneKeys(def.metadata, VANE_SET_METADATA) } : {}) };
}
