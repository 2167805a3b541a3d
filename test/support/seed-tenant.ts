/**
 * Test data for services that stand on identity (flags, analytics): an organization with an
 * owner, a project with production and staging environments, and members, written straight into
 * identity's tables, with tokens signed by identity's own keys.
 */
import { randomUUID } from "node:crypto";
import type { Kysely } from "kysely";
import type { VaneClaims } from "#lib/auth/auth.ts";
import { uniqueName } from "#test/support/harness.ts";
import type { IdentityDatabase } from "../../services/identity/schema.ts";

/** An organization with one project, its two environments and its owner. */
export interface Tenant {
  orgId: string;
  projectId: string;
  environmentId: string;
  stagingId: string;
  ownerUserId: string;
  ownerToken: string;
}

/** Signs a token as identity does. */
export type SignToken = (claims: VaneClaims) => Promise<string>;

/** Creates a tenant: organization, owner, project "web", environments production and staging. */
export async function seedTenant(idb: Kysely<IdentityDatabase>, sign: SignToken): Promise<Tenant> {
  const slug = uniqueName("org").replace(/_/g, "-");
  const t = { orgId: randomUUID(), projectId: randomUUID(), environmentId: randomUUID(), stagingId: randomUUID(), ownerUserId: randomUUID() };
  await idb.insertInto("organizations").values({ id: t.orgId, name: slug, slug }).execute();
  await idb
    .insertInto("users")
    .values({ id: t.ownerUserId, email: `owner@${slug}.test` })
    .execute();
  await idb.insertInto("members").values({ id: randomUUID(), organization_id: t.orgId, user_id: t.ownerUserId, role: "owner" }).execute();
  await idb.insertInto("projects").values({ id: t.projectId, organization_id: t.orgId, key: "web", name: "Web" }).execute();
  await idb
    .insertInto("environments")
    .values([
      { id: t.environmentId, project_id: t.projectId, organization_id: t.orgId, key: "production", name: "Production" },
      { id: t.stagingId, project_id: t.projectId, organization_id: t.orgId, key: "staging", name: "Staging" },
    ])
    .execute();
  return { ...t, ownerToken: await sign({ sub: t.ownerUserId, org: t.orgId, role: "owner", kind: "user" }) };
}

/** Adds a member with `role` to the tenant's organization and signs them a token. */
export async function addMember(
  idb: Kysely<IdentityDatabase>,
  sign: SignToken,
  t: Tenant,
  role: "viewer" | "editor" | "admin",
): Promise<{ userId: string; token: string }> {
  const userId = randomUUID();
  await idb
    .insertInto("users")
    .values({ id: userId, email: `${role}-${userId}@x.test` })
    .execute();
  await idb.insertInto("members").values({ id: randomUUID(), organization_id: t.orgId, user_id: userId, role }).execute();
  return { userId, token: await sign({ sub: userId, org: t.orgId, role, kind: "user" }) };
}
