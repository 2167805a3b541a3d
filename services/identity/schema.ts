/** Identity's tables as kysely sees them. */
import type { ColumnType, Selectable } from "kysely";

/** A timestamp the database fills in by default. */
type CreatedAt = ColumnType<Date, Date | string | undefined, never>;
/** A timestamp that may be null. */
type NullableTimestamp = ColumnType<Date | null, Date | string | null | undefined, Date | string | null>;

export interface OrganizationTable {
  id: string;
  name: string;
  slug: string;
  created_at: CreatedAt;
}
export interface UserTable {
  id: string;
  email: string;
  oidc_issuer: string | null;
  oidc_subject: string | null;
  created_at: CreatedAt;
}
export type RoleName = "viewer" | "editor" | "admin" | "owner";
export interface MemberTable {
  id: string;
  organization_id: string;
  user_id: string;
  role: RoleName;
  created_at: CreatedAt;
}
export interface ProjectTable {
  id: string;
  organization_id: string;
  key: string;
  name: string;
  created_at: CreatedAt;
}
export interface EnvironmentTable {
  id: string;
  project_id: string;
  organization_id: string;
  key: string;
  name: string;
  /** Changes need the admin role. */
  protected: ColumnType<boolean, boolean | undefined, boolean>;
  created_at: CreatedAt;
}
export type KeyKindName = "server" | "client" | "admin" | "personal";
export interface ApiKeyTable {
  id: string;
  organization_id: string;
  project_id: string | null;
  environment_id: string | null;
  member_id: string | null;
  kind: KeyKindName;
  name: string;
  prefix: string;
  secret_hash: Buffer;
  created_at: CreatedAt;
  last_used_at: NullableTimestamp;
  revoked_at: NullableTimestamp;
}
export interface SigningKeyTable {
  kid: string;
  private_jwk: ColumnType<Record<string, unknown>, string, string>;
  public_jwk: ColumnType<Record<string, unknown>, string, string>;
  created_at: CreatedAt;
  /** No longer signs; still published until the tokens it signed have expired. */
  retired_at: NullableTimestamp;
  /** Compromised: never published again (also retired). */
  revoked_at: NullableTimestamp;
}

/** Failed credential exchanges in one fixed window, shared by every replica. */
export interface CredentialFailureTable {
  dimension: "source" | "key";
  /** The source address, or the API key prefix. */
  subject: string;
  window_start: Date;
  failures: number;
}

export interface IdentityDatabase {
  organizations: OrganizationTable;
  users: UserTable;
  members: MemberTable;
  projects: ProjectTable;
  environments: EnvironmentTable;
  api_keys: ApiKeyTable;
  signing_keys: SigningKeyTable;
  credential_failures: CredentialFailureTable;
}

export type OrganizationRow = Selectable<OrganizationTable>;
export type MemberRow = Selectable<MemberTable>;
export type ProjectRow = Selectable<ProjectTable>;
export type EnvironmentRow = Selectable<EnvironmentTable>;
export type ApiKeyRow = Selectable<ApiKeyTable>;
