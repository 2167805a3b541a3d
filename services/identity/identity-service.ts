/**
 * vane.identity.v1.IdentityService: the tenancy tree, members and API keys.
 */
import { randomUUID } from "node:crypto";
import { create } from "@bufbuild/protobuf";
import type { ServiceImpl } from "@connectrpc/connect";
import { type Kysely, sql } from "kysely";
import {
  AddMemberResponseSchema,
  CreateApiKeyResponseSchema,
  CreateEnvironmentResponseSchema,
  CreateOrganizationResponseSchema,
  CreateProjectResponseSchema,
  DeleteEnvironmentResponseSchema,
  DeleteProjectResponseSchema,
  GetEnvironmentResponseSchema,
  GetOrganizationResponseSchema,
  GetProjectResponseSchema,
  IdentityService,
  ListApiKeysResponseSchema,
  ListEnvironmentsResponseSchema,
  ListMembersResponseSchema,
  ListOrganizationsResponseSchema,
  ListProjectsResponseSchema,
  RemoveMemberResponseSchema,
  RevokeApiKeyResponseSchema,
  UpdateEnvironmentResponseSchema,
  UpdateMemberRoleResponseSchema,
  UpdateOrganizationResponseSchema,
  UpdateProjectResponseSchema,
} from "#gen/vane/identity/v1/identity_service_pb.js";
import {
  ApiKeyKind,
  isEnvironmentScoped,
  requireChangeIn,
  requireEnvironmentScope,
  requirePrincipal,
  requireProjectWide,
  requireRole,
  Role,
} from "#lib/auth/auth.ts";
import { isForeignKeyViolation, isUniqueViolation } from "#lib/data/db.ts";
import { alreadyExists, failedPrecondition, invalidArgument, notFound, permissionDenied } from "#lib/process/errors.ts";
import { createdKey, decodeCreatedCursor, pageSize, takePage } from "#lib/data/pagination.ts";
import { newSecret } from "./api-key-secrets.ts";
import { kindName, roleName, toApiKey, toEnvironment, toMember, toOrganization, toProject } from "./convert.ts";
import type { IdentityDatabase } from "./schema.ts";
import { inOrganization, isPerson, requireOrganizationWide, visible } from "./tenancy.ts";

/** New environments with this key are protected unless the request says otherwise. */
export const PROTECTED_BY_DEFAULT = "production";

/** Runs an insert, turning a unique violation into ALREADY_EXISTS for `what`. */
async function unique<T>(what: string, fn: () => Promise<T>): Promise<T> {
  try {
    return await fn();
  } catch (err) {
    if (isUniqueViolation(err)) throw alreadyExists(what);
    throw err;
  }
}

/** Creates the IdentityService implementation. */
export function createIdentityService(db: Kysely<IdentityDatabase>): ServiceImpl<typeof IdentityService> {
  const findProject = (id: string) => db.selectFrom("projects").selectAll().where("id", "=", id).executeTakeFirst();
  const findEnvironment = (id: string) => db.selectFrom("environments").selectAll().where("id", "=", id).executeTakeFirst();
  const findMember = (id: string) =>
    db
      .selectFrom("members")
      .innerJoin("users", "users.id", "members.user_id")
      .selectAll("members")
      .select("users.email")
      .where("members.id", "=", id)
      .executeTakeFirst();
  const ownerCount = async (orgId: string) =>
    Number(
      (
        await db
          .selectFrom("members")
          .select((eb) => eb.fn.countAll().as("n"))
          .where("organization_id", "=", orgId)
          .where("role", "=", "owner")
          .executeTakeFirstOrThrow()
      ).n,
    );

  return {
    async createOrganization(req, ctx) {
      const p = requirePrincipal(ctx);
      if (!isPerson(p)) throw permissionDenied("only people can create organizations; use a user session or personal key");
      const user = await db.selectFrom("users").select("id").where("id", "=", p.subject).executeTakeFirst();
      if (!user) throw failedPrecondition("the calling user no longer exists");
      const id = randomUUID();
      const row = await unique(`an organization with slug "${req.slug}"`, () =>
        db.transaction().execute(async (trx) => {
          const org = await trx.insertInto("organizations").values({ id, name: req.name, slug: req.slug }).returningAll().executeTakeFirstOrThrow();
          await trx.insertInto("members").values({ id: randomUUID(), organization_id: id, user_id: user.id, role: "owner" }).execute();
          return org;
        }),
      );
      return create(CreateOrganizationResponseSchema, { organization: toOrganization(row) });
    },

    async getOrganization(req, ctx) {
      const p = requirePrincipal(ctx);
      inOrganization(p, req.id, Role.VIEWER);
      const row = await db.selectFrom("organizations").selectAll().where("id", "=", req.id).executeTakeFirst();
      if (!row) throw notFound("organization");
      return create(GetOrganizationResponseSchema, { organization: toOrganization(row) });
    },

    async updateOrganization(req, ctx) {
      const p = requirePrincipal(ctx);
      inOrganization(p, req.id, Role.OWNER);
      const row = await db.updateTable("organizations").set({ name: req.name }).where("id", "=", req.id).returningAll().executeTakeFirst();
      if (!row) throw notFound("organization");
      return create(UpdateOrganizationResponseSchema, { organization: toOrganization(row) });
    },

    async listOrganizations(req, ctx) {
      const p = requirePrincipal(ctx);
      const size = pageSize(req.pageSize);
      const after = decodeCreatedCursor(req.pageToken);
      let q = db.selectFrom("organizations").selectAll("organizations");
      if (isPerson(p)) {
        q = q.where("organizations.id", "in", db.selectFrom("members").select("organization_id").where("user_id", "=", p.subject));
      } else {
        q = q.where("organizations.id", "=", p.organizationId);
      }
      if (after) {
        q = q.where((eb) =>
          eb.or([eb("created_at", ">", after.createdAt), eb.and([eb("created_at", "=", after.createdAt), eb("organizations.id", ">", after.id)])]),
        );
      }
      const rows = await q
        .orderBy("created_at")
        .orderBy("organizations.id")
        .limit(size + 1)
        .execute();
      const { page, nextPageToken } = takePage(rows, size, createdKey);
      return create(ListOrganizationsResponseSchema, { organizations: page.map(toOrganization), nextPageToken });
    },

    async createProject(req, ctx) {
      const p = requirePrincipal(ctx);
      requireOrganizationWide(p);
      inOrganization(p, req.organizationId, Role.ADMIN);
      const row = await unique(`a project with key "${req.key}"`, () =>
        db
          .insertInto("projects")
          .values({ id: randomUUID(), organization_id: req.organizationId, key: req.key, name: req.name })
          .returningAll()
          .executeTakeFirstOrThrow(),
      );
      return create(CreateProjectResponseSchema, { project: toProject(row) });
    },

    async getProject(req, ctx) {
      const p = requirePrincipal(ctx);
      requireRole(p, Role.VIEWER);
      const row = visible(p, await findProject(req.id), "project", (r) => r.id);
      return create(GetProjectResponseSchema, { project: toProject(row) });
    },

    async listProjects(req, ctx) {
      const p = requirePrincipal(ctx);
      inOrganization(p, req.organizationId, Role.VIEWER);
      const size = pageSize(req.pageSize);
      const after = decodeCreatedCursor(req.pageToken);
      let q = db.selectFrom("projects").selectAll().where("organization_id", "=", req.organizationId);
      if (p.projectId) q = q.where("id", "=", p.projectId);
      if (after) {
        q = q.where((eb) => eb.or([eb("created_at", ">", after.createdAt), eb.and([eb("created_at", "=", after.createdAt), eb("id", ">", after.id)])]));
      }
      const rows = await q
        .orderBy("created_at")
        .orderBy("id")
        .limit(size + 1)
        .execute();
      const { page, nextPageToken } = takePage(rows, size, createdKey);
      return create(ListProjectsResponseSchema, { projects: page.map(toProject), nextPageToken });
    },

    async updateProject(req, ctx) {
      const p = requirePrincipal(ctx);
      requireRole(p, Role.ADMIN);
      requireProjectWide(p, "rename the project");
      visible(p, await findProject(req.id), "project", (r) => r.id);
      const row = await db.updateTable("projects").set({ name: req.name }).where("id", "=", req.id).returningAll().executeTakeFirstOrThrow();
      return create(UpdateProjectResponseSchema, { project: toProject(row) });
    },

    async deleteProject(req, ctx) {
      const p = requirePrincipal(ctx);
      requireRole(p, Role.ADMIN);
      requireOrganizationWide(p);
      visible(p, await findProject(req.id), "project", (r) => r.id);
      try {
        await db.deleteFrom("projects").where("id", "=", req.id).execute();
      } catch (err) {
        if (isForeignKeyViolation(err)) throw failedPrecondition("the project still has environments; delete them first");
        throw err;
      }
      return create(DeleteProjectResponseSchema, {});
    },

    async createEnvironment(req, ctx) {
      const p = requirePrincipal(ctx);
      requireRole(p, Role.ADMIN);
      requireProjectWide(p, "create environments");
      const project = visible(p, await findProject(req.projectId), "project", (r) => r.id);
      const isProtected = req.protected ?? req.key === PROTECTED_BY_DEFAULT;
      const row = await unique(`an environment with key "${req.key}"`, () =>
        db
          .insertInto("environments")
          .values({ id: randomUUID(), project_id: project.id, organization_id: project.organization_id, key: req.key, name: req.name, protected: isProtected })
          .returningAll()
          .executeTakeFirstOrThrow(),
      );
      return create(CreateEnvironmentResponseSchema, { environment: toEnvironment(row) });
    },

    async getEnvironment(req, ctx) {
      const p = requirePrincipal(ctx);
      requireRole(p, Role.VIEWER);
      const row = visible(p, await findEnvironment(req.id), "environment", (r) => r.project_id);
      return create(GetEnvironmentResponseSchema, { environment: toEnvironment(row) });
    },

    async listEnvironments(req, ctx) {
      const p = requirePrincipal(ctx);
      requireRole(p, Role.VIEWER);
      visible(p, await findProject(req.projectId), "project", (r) => r.id);
      const rows = await db.selectFrom("environments").selectAll().where("project_id", "=", req.projectId).orderBy("created_at").orderBy("id").execute();
      return create(ListEnvironmentsResponseSchema, { environments: rows.map(toEnvironment) });
    },

    async updateEnvironment(req, ctx) {
      const p = requirePrincipal(ctx);
      requireRole(p, Role.ADMIN);
      requireProjectWide(p, "change environments");
      if (req.name === undefined && req.protected === undefined) throw invalidArgument("name, protected: set at least one");
      visible(p, await findEnvironment(req.id), "environment", (r) => r.project_id);
      const row = await db
        .updateTable("environments")
        .set({ ...(req.name !== undefined ? { name: req.name } : {}), ...(req.protected !== undefined ? { protected: req.protected } : {}) })
        .where("id", "=", req.id)
        .returningAll()
        .executeTakeFirst();
      if (!row) throw notFound("environment");
      return create(UpdateEnvironmentResponseSchema, { environment: toEnvironment(row) });
    },

    async deleteEnvironment(req, ctx) {
      const p = requirePrincipal(ctx);
      requireRole(p, Role.ADMIN);
      requireProjectWide(p, "delete environments");
      visible(p, await findEnvironment(req.id), "environment", (r) => r.project_id);
      await db.transaction().execute(async (trx) => {
        await trx
          .updateTable("api_keys")
          .set({ revoked_at: sql`now()` })
          .where("environment_id", "=", req.id)
          .where("revoked_at", "is", null)
          .execute();
        await trx.deleteFrom("environments").where("id", "=", req.id).execute();
      });
      return create(DeleteEnvironmentResponseSchema, {});
    },

    async addMember(req, ctx) {
      const p = requirePrincipal(ctx);
      requireOrganizationWide(p);
      inOrganization(p, req.organizationId, req.role === Role.OWNER ? Role.OWNER : Role.ADMIN);
      const email = req.email.toLowerCase();
      const member = await db.transaction().execute(async (trx) => {
        await trx
          .insertInto("users")
          .values({ id: randomUUID(), email })
          .onConflict((oc) => oc.column("email").doNothing())
          .execute();
        const user = await trx.selectFrom("users").select("id").where("email", "=", email).executeTakeFirstOrThrow();
        const inserted = await trx
          .insertInto("members")
          .values({ id: randomUUID(), organization_id: req.organizationId, user_id: user.id, role: roleName(req.role) })
          .onConflict((oc) => oc.columns(["organization_id", "user_id"]).doNothing())
          .returningAll()
          .executeTakeFirst();
        if (!inserted) throw alreadyExists(`a member with email "${email}"`);
        return { ...inserted, email };
      });
      return create(AddMemberResponseSchema, { member: toMember(member) });
    },

    async listMembers(req, ctx) {
      const p = requirePrincipal(ctx);
      requireOrganizationWide(p);
      inOrganization(p, req.organizationId, Role.VIEWER);
      const size = pageSize(req.pageSize);
      const after = decodeCreatedCursor(req.pageToken);
      let q = db
        .selectFrom("members")
        .innerJoin("users", "users.id", "members.user_id")
        .selectAll("members")
        .select("users.email")
        .where("organization_id", "=", req.organizationId);
      if (after) {
        q = q.where((eb) =>
          eb.or([eb("members.created_at", ">", after.createdAt), eb.and([eb("members.created_at", "=", after.createdAt), eb("members.id", ">", after.id)])]),
        );
      }
      const rows = await q
        .orderBy("members.created_at")
        .orderBy("members.id")
        .limit(size + 1)
        .execute();
      const { page, nextPageToken } = takePage(rows, size, createdKey);
      return create(ListMembersResponseSchema, { members: page.map(toMember), nextPageToken });
    },

    async updateMemberRole(req, ctx) {
      const p = requirePrincipal(ctx);
      requireRole(p, Role.ADMIN);
      requireOrganizationWide(p);
      const member = visible(p, await findMember(req.memberId), "member");
      if (member.role === "owner" || req.role === Role.OWNER) requireRole(p, Role.OWNER);
      const updated = await db.transaction().execute(async (trx) => {
        await sql`select pg_advisory_xact_lock(hashtext(${`vane:owners:${member.organization_id}`}))`.execute(trx);
        if (member.role === "owner" && req.role !== Role.OWNER && (await ownerCount(member.organization_id)) <= 1) {
          throw failedPrecondition("an organization needs at least one owner; promote someone else first");
        }
        return trx
          .updateTable("members")
          .set({ role: roleName(req.role) })
          .where("id", "=", member.id)
          .returningAll()
          .executeTakeFirstOrThrow();
      });
      return create(UpdateMemberRoleResponseSchema, { member: toMember({ ...updated, email: member.email }) });
    },

    async removeMember(req, ctx) {
      const p = requirePrincipal(ctx);
      requireRole(p, Role.ADMIN);
      requireOrganizationWide(p);
      const member = visible(p, await findMember(req.memberId), "member");
      if (member.role === "owner") requireRole(p, Role.OWNER);
      await db.transaction().execute(async (trx) => {
        await sql`select pg_advisory_xact_lock(hashtext(${`vane:owners:${member.organization_id}`}))`.execute(trx);
        if (member.role === "owner" && (await ownerCount(member.organization_id)) <= 1) {
          throw failedPrecondition("the last owner cannot be removed; promote someone else first");
        }
        await trx.deleteFrom("members").where("id", "=", member.id).execute();
      });
      return create(RemoveMemberResponseSchema, {});
    },

    async createApiKey(req, ctx) {
      const p = requirePrincipal(ctx);
      const kind = kindName(req.kind);
      const { secret, prefix, hash } = newSecret(kind);
      let values;
      if (req.kind === ApiKeyKind.PERSONAL) {
        if (!isPerson(p)) throw permissionDenied("personal keys are created by people, for themselves");
        if (req.environmentId) throw invalidArgument("environment_id: must be empty for personal keys");
        const member = await db
          .selectFrom("members")
          .select("id")
          .where("organization_id", "=", p.organizationId)
          .where("user_id", "=", p.subject)
          .executeTakeFirst();
        if (!member) throw failedPrecondition("you are not a member of an organization; create or join one first");
        values = { organization_id: p.organizationId, project_id: null, environment_id: null, member_id: member.id };
      } else {
        if (!req.environmentId) throw invalidArgument("environment_id: required for server, client and admin keys");
        requireRole(p, Role.ADMIN);
        requireEnvironmentScope(p, req.environmentId);
        const env = visible(p, await findEnvironment(req.environmentId), "environment", (r) => r.project_id);
        requireChangeIn(p, { environmentId: env.id, key: env.key, protected: env.protected });
        values = { organization_id: env.organization_id, project_id: env.project_id, environment_id: env.id, member_id: null };
      }
      const row = await db
        .insertInto("api_keys")
        .values({ id: randomUUID(), ...values, kind, name: req.name, prefix, secret_hash: hash })
        .returningAll()
        .executeTakeFirstOrThrow();
      return create(CreateApiKeyResponseSchema, { apiKey: toApiKey(row), secret });
    },

    async listApiKeys(req, ctx) {
      const p = requirePrincipal(ctx);
      let q = db.selectFrom("api_keys").selectAll();
      if (req.environmentId) {
        requireRole(p, Role.ADMIN);
        requireEnvironmentScope(p, req.environmentId);
        visible(p, await findEnvironment(req.environmentId), "environment", (r) => r.project_id);
        q = q.where("environment_id", "=", req.environmentId);
      } else {
        if (!isPerson(p)) throw invalidArgument("environment_id: required when called with an API key");
        requireRole(p, Role.VIEWER);
        q = q.where("organization_id", "=", p.organizationId).where("member_id", "in", db.selectFrom("members").select("id").where("user_id", "=", p.subject));
      }
      if (!req.includeRevoked) q = q.where("revoked_at", "is", null);
      const rows = await q.orderBy("created_at", "desc").orderBy("id").execute();
      return create(ListApiKeysResponseSchema, { apiKeys: rows.map(toApiKey) });
    },

    async revokeApiKey(req, ctx) {
      const p = requirePrincipal(ctx);
      requireRole(p, Role.VIEWER);
      const key = visible(p, await db.selectFrom("api_keys").selectAll().where("id", "=", req.id).executeTakeFirst(), "API key", (r) => r.project_id ?? "");
      if (key.kind === "personal") {
        const own = await db.selectFrom("members").select("id").where("id", "=", key.member_id).where("user_id", "=", p.subject).executeTakeFirst();
        if (!own) requireRole(p, Role.ADMIN);
      } else {
        requireRole(p, Role.ADMIN);
        // An admin key manages the keys of its own environment only.
        if (isEnvironmentScoped(p) && key.environment_id) requireEnvironmentScope(p, key.environment_id);
      }
      const row = await db
        .updateTable("api_keys")
        .set({ revoked_at: sql`coalesce(revoked_at, now())` })
        .where("id", "=", key.id)
        .returningAll()
        .executeTakeFirstOrThrow();
      return create(RevokeApiKeyResponseSchema, { apiKey: toApiKey(row) });
    },
  };
}
