/** Rows to messages. */
import { create } from "@bufbuild/protobuf";
import { timestampFromDate } from "@bufbuild/protobuf/wkt";
import {
  type ApiKey,
  ApiKeyKind,
  ApiKeySchema,
  EnvironmentSchema,
  MemberSchema,
  OrganizationSchema,
  ProjectSchema,
  Role,
} from "#gen/vane/identity/v1/identity_pb.js";
import type { ApiKeyRow, EnvironmentRow, KeyKindName, MemberRow, OrganizationRow, ProjectRow, RoleName } from "./schema.ts";

export const roleFromName: Record<RoleName, Role> = {
  viewer: Role.VIEWER,
  editor: Role.EDITOR,
  admin: Role.ADMIN,
  owner: Role.OWNER,
};
export const roleName = (r: Role): RoleName => (Object.entries(roleFromName).find(([, v]) => v === r)?.[0] ?? "viewer") as RoleName;

export const kindFromName: Record<KeyKindName, ApiKeyKind> = {
  server: ApiKeyKind.SERVER,
  client: ApiKeyKind.CLIENT,
  admin: ApiKeyKind.ADMIN,
  personal: ApiKeyKind.PERSONAL,
};
export const kindName = (k: ApiKeyKind): KeyKindName => (Object.entries(kindFromName).find(([, v]) => v === k)?.[0] ?? "server") as KeyKindName;

export const toOrganization = (r: OrganizationRow) =>
  create(OrganizationSchema, { id: r.id, name: r.name, slug: r.slug, createTime: timestampFromDate(r.created_at) });

export const toProject = (r: ProjectRow) =>
  create(ProjectSchema, { id: r.id, organizationId: r.organization_id, key: r.key, name: r.name, createTime: timestampFromDate(r.created_at) });

export const toEnvironment = (r: EnvironmentRow) =>
  create(EnvironmentSchema, {
    id: r.id,
    projectId: r.project_id,
    organizationId: r.organization_id,
    key: r.key,
    name: r.name,
    createTime: timestampFromDate(r.created_at),
    protected: r.protected,
  });

export const toMember = (r: MemberRow & { email: string }) =>
  create(MemberSchema, {
    id: r.id,
    organizationId: r.organization_id,
    userId: r.user_id,
    email: r.email,
    role: roleFromName[r.role],
    createTime: timestampFromDate(r.created_at),
  });

export const toApiKey = (r: ApiKeyRow): ApiKey =>
  create(ApiKeySchema, {
    id: r.id,
    organizationId: r.organization_id,
    projectId: r.project_id ?? "",
    environmentId: r.environment_id ?? "",
    memberId: r.member_id ?? "",
    kind: kindFromName[r.kind],
    name: r.name,
    prefix: r.prefix,
    createTime: timestampFromDate(r.created_at),
    lastUsedTime: r.last_used_at ? timestampFromDate(r.last_used_at) : undefined,
    revokeTime: r.revoked_at ? timestampFromDate(r.revoked_at) : undefined,
  });
