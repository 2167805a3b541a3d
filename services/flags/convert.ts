/** Rows to messages and messages to stored JSON. */
import { create, fromJson, toJson, type JsonValue as PbJson } from "@bufbuild/protobuf";
import { timestampFromDate, ValueSchema } from "@bufbuild/protobuf/wkt";
import {
  type AuditEntry,
  AuditEntrySchema,
  type Condition,
  ConditionSchema,
  type Flag,
  type FlagEnvironment,
  FlagEnvironmentSchema,
  FlagSchema,
  FlagType,
  type Rule,
  RuleSchema,
  type Segment,
  SegmentSchema,
  type Variant,
  VariantSchema,
} from "#gen/vane/flags/v1/flags_pb.js";
import type { AuditEntryRow, FlagEnvironmentRow, FlagRow, FlagTypeName, SegmentRow, StoredMetadata, StoredVariant } from "./schema.ts";

export const typeFromName: Record<FlagTypeName, FlagType> = {
  boolean: FlagType.BOOLEAN,
  string: FlagType.STRING,
  number: FlagType.NUMBER,
  object: FlagType.OBJECT,
};
export const typeName = (t: FlagType): FlagTypeName => (Object.entries(typeFromName).find(([, v]) => v === t)?.[0] ?? "string") as FlagTypeName;

export const variantsToJson = (vs: readonly Variant[]): string => JSON.stringify(vs.map((v) => toJson(VariantSchema, v)));
export const variantsFromRow = (vs: StoredVariant[]): Variant[] => vs.map((v) => fromJson(VariantSchema, v as unknown as PbJson));
export const rulesToJson = (rs: readonly Rule[]): string => JSON.stringify(rs.map((r) => toJson(RuleSchema, r)));
export const rulesFromRow = (rs: unknown[]): Rule[] => rs.map((r) => fromJson(RuleSchema, r as PbJson));
export const conditionsToJson = (cs: readonly Condition[]): string => JSON.stringify(cs.map((c) => toJson(ConditionSchema, c)));
export const conditionsFromRow = (cs: unknown[]): Condition[] => cs.map((c) => fromJson(ConditionSchema, c as PbJson));

export function toFlag(row: FlagRow): Flag {
  return create(FlagSchema, {
    id: row.id,
    projectId: row.project_id,
    key: row.key,
    name: row.name,
    description: row.description,
    tags: row.tags,
    owner: row.owner,
    type: typeFromName[row.type],
    variants: variantsFromRow(row.variants),
    clientVisible: row.client_visible,
    archived: row.archived,
    version: BigInt(row.version),
    createTime: timestampFromDate(row.created_at),
    updateTime: timestampFromDate(row.updated_at),
  });
}

export function toFlagEnvironment(flagKey: string, row: FlagEnvironmentRow): FlagEnvironment {
  return create(FlagEnvironmentSchema, {
    flagKey,
    environmentId: row.environment_id,
    enabled: row.enabled,
    defaultVariant: row.default_variant,
    rules: rulesFromRow(row.rules),
    metadata: metadataToValues(row.metadata),
    version: BigInt(row.version),
    updateTime: timestampFromDate(row.updated_at),
  });
}

/** Stored flagd metadata as a map of protobuf Values. */
export const metadataToValues = (m: StoredMetadata | undefined) => Object.fromEntries(Object.entries(m ?? {}).map(([k, v]) => [k, fromJson(ValueSchema, v)]));

export function toSegment(row: SegmentRow): Segment {
  return create(SegmentSchema, {
    id: row.id,
    projectId: row.project_id,
    key: row.key,
    name: row.name,
    description: row.description,
    conditions: conditionsFromRow(row.conditions),
    includedKeys: row.included_keys,
    excludedKeys: row.excluded_keys,
    version: BigInt(row.version),
    createTime: timestampFromDate(row.created_at),
    updateTime: timestampFromDate(row.updated_at),
  });
}

export function toAuditEntry(row: AuditEntryRow): AuditEntry {
  return create(AuditEntrySchema, {
    id: BigInt(row.id),
    projectId: row.project_id,
    environmentId: row.environment_id ?? "",
    flagKey: row.flag_key ?? "",
    segmentKey: row.segment_key ?? "",
    action: row.action,
    actor: row.actor,
    actorKind: row.actor_kind,
    reason: row.reason,
    before: fromJson(ValueSchema, row.before as PbJson),
    after: fromJson(ValueSchema, row.after as PbJson),
    createTime: timestampFromDate(row.created_at),
  });
}

/** The audit form of an object: its proto JSON. */
export const auditJson = {
  flag: (f: Flag) => toJson(FlagSchema, f, { alwaysEmitImplicit: true }),
  environment: (e: FlagEnvironment) => toJson(FlagEnvironmentSchema, e, { alwaysEmitImplicit: true }),
  segment: (s: Segment) => toJson(SegmentSchema, s, { alwaysEmitImplicit: true }),
};
