/**
 * The flags-as-code model (cli/schema/vane-flags.schema.json) and its conversions to and from
 * the contract's messages. Both directions go through the same plain shape, so comparing a file
 * with the server is comparing two of these.
 */
import { create, fromJson, toJson, type JsonValue } from "@bufbuild/protobuf";
import { ValueSchema } from "@bufbuild/protobuf/wkt";
import {
  ConditionSchema,
  FlagType,
  Operator,
  RuleSchema,
  SegmentSchema,
  type Condition,
  type Flag,
  type FlagEnvironment,
  type Rule,
  type Segment,
} from "#gen/vane/flags/v1/flags_pb.js";
import { enumName, enumValue } from "../shapes.ts";

export type ConditionSpec =
  | { attribute: string; op: string; values: JsonValue[] }
  | { segment: string; negate?: boolean }
  | { jsonLogic: JsonValue }
  | { layer: string; start: number; end: number; bucketBy?: string };

export interface RuleSpec {
  id?: string;
  description?: string;
  when?: ConditionSpec[];
  variant?: string;
  rollout?: Record<string, number>[];
  bucketBy?: string;
  seed?: string;
  jsonLogic?: JsonValue;
}

export interface EnvironmentSpec {
  enabled: boolean;
  default?: string;
  rules?: RuleSpec[];
}

export interface FlagSpec {
  name?: string;
  description?: string;
  type: "boolean" | "string" | "number" | "object";
  tags?: string[];
  owner?: string;
  clientVisible?: boolean;
  variants: Record<string, JsonValue>;
  environments?: Record<string, EnvironmentSpec>;
}

export interface SegmentSpec {
  name?: string;
  description?: string;
  when?: ConditionSpec[];
  include?: string[];
  exclude?: string[];
}

export interface ProjectSpec {
  project?: string;
  flags?: Record<string, FlagSpec>;
  segments?: Record<string, SegmentSpec>;
}

const value = (v: JsonValue) => fromJson(ValueSchema, v);
const json = (v: Parameters<typeof toJson<typeof ValueSchema>>[1] | undefined): JsonValue => (v ? toJson(ValueSchema, v) : null);

// ---- contract → spec (pull, and the "current" side of a diff) ----

export function conditionToSpec(c: Condition): ConditionSpec {
  switch (c.kind.case) {
    case "attribute":
      return { attribute: c.kind.value.attribute, op: enumName(Operator, c.kind.value.operator), values: c.kind.value.values.map(json) };
    case "segment":
      return c.kind.value.negate ? { segment: c.kind.value.segmentKey, negate: true } : { segment: c.kind.value.segmentKey };
    case "jsonLogic":
      return { jsonLogic: json(c.kind.value) };
    case "layer": {
      const l = c.kind.value;
      return { layer: l.layerKey, start: l.start, end: l.end, ...(l.bucketBy ? { bucketBy: l.bucketBy } : {}) };
    }
    default:
      throw new Error("condition without a kind");
  }
}

export function ruleToSpec(r: Rule): RuleSpec {
  const spec: RuleSpec = {};
  if (r.description) spec.description = r.description;
  if (r.conditions.length) spec.when = r.conditions.map(conditionToSpec);
  const o = r.outcome?.kind;
  if (o?.case === "variant") spec.variant = o.value;
  else if (o?.case === "rollout") {
    spec.rollout = o.value.variants.map((w) => ({ [w.variant]: w.weight }));
    if (o.value.bucketBy) spec.bucketBy = o.value.bucketBy;
    if (o.value.seed) spec.seed = o.value.seed;
  } else if (o?.case === "jsonLogic") spec.jsonLogic = json(o.value);
  return spec;
}

export function environmentToSpec(e: FlagEnvironment): EnvironmentSpec {
  return { enabled: e.enabled, ...(e.defaultVariant ? { default: e.defaultVariant } : {}), ...(e.rules.length ? { rules: e.rules.map(ruleToSpec) } : {}) };
}

/** `envKeys` maps environment ids to keys; environments never configured (version 0) are left out. */
export function flagToSpec(f: Flag, environments: FlagEnvironment[], envKeys: Map<string, string>): FlagSpec {
  const spec: FlagSpec = { name: f.name, type: enumName(FlagType, f.type) as FlagSpec["type"], variants: {} };
  if (f.description) spec.description = f.description;
  if (f.tags.length) spec.tags = [...f.tags];
  if (f.owner) spec.owner = f.owner;
  if (f.clientVisible) spec.clientVisible = true;
  for (const v of f.variants) spec.variants[v.key] = json(v.value);
  const envs: Record<string, EnvironmentSpec> = {};
  for (const e of environments) {
    const key = envKeys.get(e.environmentId);
    if (key && e.version > 0n) envs[key] = environmentToSpec(e);
  }
  if (Object.keys(envs).length) spec.environments = envs;
  return spec;
}

export function segmentToSpec(s: Segment): SegmentSpec {
  const spec: SegmentSpec = { name: s.name };
  if (s.description) spec.description = s.description;
  if (s.conditions.length) spec.when = s.conditions.map(conditionToSpec);
  if (s.includedKeys.length) spec.include = [...s.includedKeys];
  if (s.excludedKeys.length) spec.exclude = [...s.excludedKeys];
  return spec;
}

// ---- spec → contract (apply) ----

export function conditionFromSpec(c: ConditionSpec): Condition {
  if ("attribute" in c)
    return create(ConditionSchema, {
      kind: { case: "attribute", value: { attribute: c.attribute, operator: enumValue(Operator, c.op), values: c.values.map(value) } },
    });
  if ("segment" in c) return create(ConditionSchema, { kind: { case: "segment", value: { segmentKey: c.segment, negate: Boolean(c.negate) } } });
  if ("layer" in c)
    return create(ConditionSchema, { kind: { case: "layer", value: { layerKey: c.layer, start: c.start, end: c.end, bucketBy: c.bucketBy ?? "" } } });
  return create(ConditionSchema, { kind: { case: "jsonLogic", value: value(c.jsonLogic) } });
}

export function ruleFromSpec(r: RuleSpec, id = ""): Rule {
  const outcome =
    r.variant !== undefined
      ? { kind: { case: "variant" as const, value: r.variant } }
      : r.rollout
        ? {
            kind: {
              case: "rollout" as const,
              value: {
                bucketBy: r.bucketBy ?? "",
                seed: r.seed ?? "",
                variants: r.rollout.map((slice) => ({ variant: Object.keys(slice)[0], weight: Object.values(slice)[0] })),
              },
            },
          }
        : { kind: { case: "jsonLogic" as const, value: value(r.jsonLogic ?? null) } };
  return create(RuleSchema, { id: r.id ?? id, description: r.description ?? "", conditions: (r.when ?? []).map(conditionFromSpec), outcome });
}

/** Fills a file's omitted fields with what the server would store, so equal means no change. */
export function normalizeFlag(key: string, f: FlagSpec): FlagSpec {
  const out: FlagSpec = { name: f.name ?? key, type: f.type, variants: f.variants };
  if (f.description) out.description = f.description;
  if (f.tags?.length) out.tags = f.tags;
  if (f.owner) out.owner = f.owner;
  if (f.clientVisible) out.clientVisible = true;
  if (f.environments) out.environments = Object.fromEntries(Object.entries(f.environments).map(([k, e]) => [k, normalizeEnvironment(e)]));
  return out;
}

export function normalizeEnvironment(e: EnvironmentSpec): EnvironmentSpec {
  return { enabled: e.enabled, ...(e.default ? { default: e.default } : {}), ...(e.rules?.length ? { rules: e.rules.map(normalizeRule) } : {}) };
}

function normalizeRule(r: RuleSpec): RuleSpec {
  // Round-trip through the contract so spellings that mean the same compare equal.
  return ruleToSpec(ruleFromSpec(r));
}

export function normalizeSegment(key: string, s: SegmentSpec): SegmentSpec {
  return segmentToSpec(
    create(SegmentSchema, {
      name: s.name ?? key,
      description: s.description ?? "",
      conditions: (s.when ?? []).map(conditionFromSpec),
      includedKeys: s.include ?? [],
      excludedKeys: s.exclude ?? [],
    }),
  );
}
