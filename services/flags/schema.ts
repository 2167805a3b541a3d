/** The flags service's tables as kysely sees them. */
import type { ColumnType, Generated, Selectable } from "kysely";

/** A timestamp the database fills in by default. */
type CreatedAt = ColumnType<Date, Date | string | undefined, Date | string>;
/** A jsonb column: read as parsed JSON, written as JSON text. */
type Json<T> = ColumnType<T, string, string>;
/** A bigint column pg returns as a string (int8 exceeds JS numbers in general). */
type BigIntColumn = ColumnType<string, number | bigint | string, number | bigint | string>;

/** flagd metadata: string, number or boolean values. */
export type StoredMetadata = Record<string, string | number | boolean>;
/** A jsonb metadata column with a database default of `{}`. */
type MetadataColumn = ColumnType<StoredMetadata, string | undefined, string>;

export type FlagTypeName = "boolean" | "string" | "number" | "object";

/** A variant as stored: the proto JSON form of vane.flags.v1.Variant. */
export interface StoredVariant {
  key: string;
  value: unknown;
  description?: string;
}

export interface FlagTable {
  id: string;
  organization_id: string;
  project_id: string;
  key: string;
  name: string;
  description: string;
  tags: Json<string[]>;
  owner: string;
  type: FlagTypeName;
  variants: Json<StoredVariant[]>;
  client_visible: boolean;
  archived: boolean;
  version: BigIntColumn;
  created_at: CreatedAt;
  updated_at: CreatedAt;
}

export interface FlagEnvironmentTable {
  flag_id: string;
  environment_id: string;
  organization_id: string;
  project_id: string;
  enabled: boolean;
  default_variant: string;
  /** The proto JSON form of each vane.flags.v1.Rule. */
  rules: Json<unknown[]>;
  /** flagd flag metadata from the last import (Vane's own keys excluded). */
  metadata: MetadataColumn;
  version: BigIntColumn;
  updated_at: CreatedAt;
}

/** flagd flag-set metadata of an environment, from the last import that carried any. */
export interface EnvironmentMetadataTable {
  environment_id: string;
  organization_id: string;
  project_id: string;
  metadata: Json<StoredMetadata>;
  updated_at: CreatedAt;
}

export interface SegmentTable {
  id: string;
  organization_id: string;
  project_id: string;
  key: string;
  name: string;
  description: string;
  /** The proto JSON form of each vane.flags.v1.Condition. */
  conditions: Json<unknown[]>;
  included_keys: Json<string[]>;
  excluded_keys: Json<string[]>;
  version: BigIntColumn;
  created_at: CreatedAt;
  updated_at: CreatedAt;
}

export interface EnvironmentVersionTable {
  environment_id: string;
  organization_id: string;
  project_id: string;
  version: BigIntColumn;
  updated_at: CreatedAt;
}

export interface AuditEntryTable {
  id: Generated<string>;
  organization_id: string;
  project_id: string;
  environment_id: string | null;
  flag_key: string | null;
  segment_key: string | null;
  action: string;
  actor: string;
  actor_kind: string;
  reason: string;
  before: Json<unknown>;
  after: Json<unknown>;
  created_at: CreatedAt;
}

export interface OutboxTable {
  id: Generated<string>;
  /** "kv" (a snapshot put) or "event" (a JetStream publish). */
  kind: string;
  /** The KV key or the subject. */
  target: string;
  payload: Buffer;
  /** The event id (JetStream message id), or the snapshot's version for KV rows. */
  msg_id: string;
  /** W3C trace context of the committing request. */
  headers: Json<Record<string, string>>;
  created_at: CreatedAt;
  published_at: ColumnType<Date | null, Date | string | null | undefined, Date | string | null>;
  /** Rows of one key are published in id order (an environment id, `flag:<project>/<key>`, …); null: the target. */
  ordering_key: string | null;
  /** Failed publish attempts so far. */
  attempts: Generated<number>;
  /** Set when the relay gave up on the row (see lib/data/outbox.ts). */
  parked_at: ColumnType<Date | null, Date | string | null | undefined, Date | string | null>;
  last_error: string | null;
}

export interface FlagsDatabase {
  flags: FlagTable;
  flag_environments: FlagEnvironmentTable;
  segments: SegmentTable;
  environment_versions: EnvironmentVersionTable;
  environment_metadata: EnvironmentMetadataTable;
  audit_entries: AuditEntryTable;
  outbox: OutboxTable;
}

export type FlagRow = Selectable<FlagTable>;
export type FlagEnvironmentRow = Selectable<FlagEnvironmentTable>;
export type SegmentRow = Selectable<SegmentTable>;
export type AuditEntryRow = Selectable<AuditEntryTable>;
