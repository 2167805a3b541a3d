import { randomUUID } from "node:crypto";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Code } from "@connectrpc/connect";
import { AuthService } from "#gen/vane/identity/v1/auth_service_pb.js";
import { ApiKeyKind, Role } from "#gen/vane/identity/v1/identity_pb.js";
import { IdentityService } from "#gen/vane/identity/v1/identity_service_pb.js";
import { assertTenancyMatrix, type TenancyCase } from "#test/support/tenancy.ts";
import { type IdentityHarness, startIdentity, type Tenant } from "./harness.ts";

describe("tenancy", () => {
  let h: IdentityHarness;
  let victim: Tenant;
  let attacker: Tenant;
  let victimKeyId: string;
  beforeAll(async () => {
    h = await startIdentity();
    victim = await h.seedTenant();
    attacker = await h.seedTenant();
    const owner = h.client(IdentityService, victim.ownerToken);
    victimKeyId = (await owner.createApiKey({ environmentId: victim.environmentId, kind: ApiKeyKind.SERVER, name: "victim" })).apiKey!.id;
  });
  afterAll(() => h?.close());

  // Run the matrix as each kind of foreign principal: owner, admin key, personal key.
  for (const as of ["owner", "admin key", "personal key"] as const) {
    it(`hides every IdentityService object of another organization from its ${as}`, async () => {
      const ownerOfAttacker = h.client(IdentityService, attacker.ownerToken);
      let token = attacker.ownerToken;
      if (as !== "owner") {
        const created = await ownerOfAttacker.createApiKey(
          as === "admin key" ? { environmentId: attacker.environmentId, kind: ApiKeyKind.ADMIN, name: "a" } : { kind: ApiKeyKind.PERSONAL, name: "p" },
        );
        token = (await h.client(AuthService).exchangeApiKey({ apiKey: created.secret })).accessToken;
      }
      const c = h.client(IdentityService, token);
      // Organization-wide calls by a project-scoped admin key are refused before any lookup.
      const orgWide = as === "admin key" ? Code.PermissionDenied : Code.NotFound;
      // Owner-only calls: an admin key lacks the role, refused before any lookup.
      const ownerOnly = orgWide;
      // An admin key is bound to its environment: other environments' keys and changes shared by
      // the project are refused before any lookup.
      const keyScoped = orgWide;
      await assertTenancyMatrix(IdentityService, {
        createOrganization: { notApplicable: "creates a new organization; takes no foreign id" },
        getOrganization: { expect: Code.NotFound, call: () => c.getOrganization({ id: victim.orgId }) },
        updateOrganization: { expect: ownerOnly, call: () => c.updateOrganization({ id: victim.orgId, name: "pwned" }) },
        listOrganizations: {
          notApplicable: "lists only the caller's own organizations",
          check: async () => {
            const { organizations } = await c.listOrganizations({});
            expect(organizations.map((o) => o.id)).not.toContain(victim.orgId);
          },
        },
        createProject: { expect: orgWide, call: () => c.createProject({ organizationId: victim.orgId, key: "x", name: "x" }) },
        getProject: { expect: Code.NotFound, call: () => c.getProject({ id: victim.projectId }) },
        listProjects: { expect: Code.NotFound, call: () => c.listProjects({ organizationId: victim.orgId }) },
        updateProject: { expect: keyScoped, call: () => c.updateProject({ id: victim.projectId, name: "x" }) },
        deleteProject: { expect: orgWide, call: () => c.deleteProject({ id: victim.projectId }) },
        createEnvironment: { expect: keyScoped, call: () => c.createEnvironment({ projectId: victim.projectId, key: "x", name: "x" }) },
        getEnvironment: { expect: Code.NotFound, call: () => c.getEnvironment({ id: victim.environmentId }) },
        listEnvironments: { expect: Code.NotFound, call: () => c.listEnvironments({ projectId: victim.projectId }) },
        updateEnvironment: { expect: keyScoped, call: () => c.updateEnvironment({ id: victim.environmentId, protected: false }) },
        deleteEnvironment: { expect: keyScoped, call: () => c.deleteEnvironment({ id: victim.environmentId }) },
        addMember: { expect: orgWide, call: () => c.addMember({ organizationId: victim.orgId, email: "spy@evil.test", role: Role.VIEWER }) },
        listMembers: { expect: orgWide, call: () => c.listMembers({ organizationId: victim.orgId }) },
        updateMemberRole: { expect: orgWide, call: () => c.updateMemberRole({ memberId: victim.ownerMemberId, role: Role.VIEWER }) },
        removeMember: { expect: orgWide, call: () => c.removeMember({ memberId: victim.ownerMemberId }) },
        createApiKey: { expect: keyScoped, call: () => c.createApiKey({ environmentId: victim.environmentId, kind: ApiKeyKind.SERVER, name: "x" }) },
        listApiKeys: { expect: keyScoped, call: () => c.listApiKeys({ environmentId: victim.environmentId }) },
        revokeApiKey: { expect: Code.NotFound, call: () => c.revokeApiKey({ id: victimKeyId }) },
      });
      // The same codes as for ids that never existed: nothing distinguishes "foreign" from "absent".
      const absent = "00000000-0000-4000-8000-000000000000";
      await assertTenancyMatrix(IdentityService, {
        createOrganization: { notApplicable: "no id" },
        listOrganizations: { notApplicable: "no id" },
        getOrganization: { expect: Code.NotFound, call: () => c.getOrganization({ id: absent }) },
        updateOrganization: { expect: ownerOnly, call: () => c.updateOrganization({ id: absent, name: "x" }) },
        createProject: { expect: orgWide, call: () => c.createProject({ organizationId: absent, key: "x", name: "x" }) },
        getProject: { expect: Code.NotFound, call: () => c.getProject({ id: absent }) },
        listProjects: { expect: Code.NotFound, call: () => c.listProjects({ organizationId: absent }) },
        updateProject: { expect: keyScoped, call: () => c.updateProject({ id: absent, name: "x" }) },
        deleteProject: { expect: orgWide, call: () => c.deleteProject({ id: absent }) },
        createEnvironment: { expect: keyScoped, call: () => c.createEnvironment({ projectId: absent, key: "x", name: "x" }) },
        getEnvironment: { expect: Code.NotFound, call: () => c.getEnvironment({ id: absent }) },
        listEnvironments: { expect: Code.NotFound, call: () => c.listEnvironments({ projectId: absent }) },
        updateEnvironment: { expect: keyScoped, call: () => c.updateEnvironment({ id: absent, protected: false }) },
        deleteEnvironment: { expect: keyScoped, call: () => c.deleteEnvironment({ id: absent }) },
        addMember: { expect: orgWide, call: () => c.addMember({ organizationId: absent, email: "a@b.test", role: Role.VIEWER }) },
        listMembers: { expect: orgWide, call: () => c.listMembers({ organizationId: absent }) },
        updateMemberRole: { expect: orgWide, call: () => c.updateMemberRole({ memberId: absent, role: Role.VIEWER }) },
        removeMember: { expect: orgWide, call: () => c.removeMember({ memberId: absent }) },
        createApiKey: { expect: keyScoped, call: () => c.createApiKey({ environmentId: absent, kind: ApiKeyKind.SERVER, name: "x" }) },
        listApiKeys: { expect: keyScoped, call: () => c.listApiKeys({ environmentId: absent }) },
        revokeApiKey: { expect: Code.NotFound, call: () => c.revokeApiKey({ id: absent }) },
      });
    });
  }

  /** A tenant of its own with a development environment next to (protected) production, an editor, and an admin key of development. */
  async function scopedTenant() {
    const t = await h.seedTenant();
    const owner = h.client(IdentityService, t.ownerToken);
    const { environment: dev } = await owner.createEnvironment({ projectId: t.projectId, key: "development", name: "Development" });
    await owner.updateEnvironment({ id: t.environmentId, protected: true });
    const prodKey = (await owner.createApiKey({ environmentId: t.environmentId, kind: ApiKeyKind.SERVER, name: "prod backend" })).apiKey!.id;
    const devAdmin = await owner.createApiKey({ environmentId: dev!.id, kind: ApiKeyKind.ADMIN, name: "dev admin" });
    const devAdminToken = (await h.client(AuthService).exchangeApiKey({ apiKey: devAdmin.secret })).accessToken;
    const editorId = randomUUID();
    const db = h.module.database.db;
    await db
      .insertInto("users")
      .values({ id: editorId, email: `editor-${editorId}@x.test` })
      .execute();
    const editorMemberId = randomUUID();
    await db.insertInto("members").values({ id: editorMemberId, organization_id: t.orgId, user_id: editorId, role: "editor" }).execute();
    const editorToken = await h.sign({ sub: editorId, org: t.orgId, role: "editor", kind: "user" });
    return { t, devId: dev!.id, prodKey, devAdminToken, editorToken, editorMemberId };
  }

  /** IdentityService against production, for a caller who may read the project but not change production. */
  function productionMatrix(
    c: ReturnType<typeof h.client<typeof IdentityService>>,
    s: Awaited<ReturnType<typeof scopedTenant>>,
    personOnly: Code.PermissionDenied | "allowed",
  ) {
    const { t } = s;
    const denied = { expect: Code.PermissionDenied } as const;
    return {
      createOrganization: { expect: personOnly, call: () => c.createOrganization({ name: "x", slug: `x-${randomUUID().slice(0, 8)}` }) },
      getOrganization: { expect: "allowed", call: () => c.getOrganization({ id: t.orgId }) },
      updateOrganization: { ...denied, call: () => c.updateOrganization({ id: t.orgId, name: "x" }) },
      listOrganizations: { expect: "allowed", call: () => c.listOrganizations({}) },
      createProject: { ...denied, call: () => c.createProject({ organizationId: t.orgId, key: "x", name: "x" }) },
      getProject: { expect: "allowed", call: () => c.getProject({ id: t.projectId }) },
      listProjects: { expect: "allowed", call: () => c.listProjects({ organizationId: t.orgId }) },
      updateProject: { ...denied, call: () => c.updateProject({ id: t.projectId, name: "x" }) },
      deleteProject: { ...denied, call: () => c.deleteProject({ id: t.projectId }) },
      createEnvironment: { ...denied, call: () => c.createEnvironment({ projectId: t.projectId, key: "x", name: "x" }) },
      getEnvironment: { expect: "allowed", call: () => c.getEnvironment({ id: t.environmentId }) },
      listEnvironments: { expect: "allowed", call: () => c.listEnvironments({ projectId: t.projectId }) },
      updateEnvironment: { ...denied, call: () => c.updateEnvironment({ id: t.environmentId, protected: false }) },
      deleteEnvironment: { ...denied, call: () => c.deleteEnvironment({ id: t.environmentId }) },
      addMember: { ...denied, call: () => c.addMember({ organizationId: t.orgId, email: "spy@evil.test", role: Role.ADMIN }) },
      listMembers: { expect: personOnly, call: () => c.listMembers({ organizationId: t.orgId }) },
      updateMemberRole: { ...denied, call: () => c.updateMemberRole({ memberId: s.editorMemberId, role: Role.ADMIN }) },
      removeMember: { ...denied, call: () => c.removeMember({ memberId: s.editorMemberId }) },
      createApiKey: { ...denied, call: () => c.createApiKey({ environmentId: t.environmentId, kind: ApiKeyKind.ADMIN, name: "x" }) },
      listApiKeys: { ...denied, call: () => c.listApiKeys({ environmentId: t.environmentId }) },
      revokeApiKey: { ...denied, call: () => c.revokeApiKey({ id: s.prodKey }) },
    } satisfies Record<string, TenancyCase>;
  }

  it("keeps an admin key inside its environment (environment scope)", async () => {
    const s = await scopedTenant();
    const c = h.client(IdentityService, s.devAdminToken);
    await assertTenancyMatrix(IdentityService, productionMatrix(c, s, Code.PermissionDenied), "environment scope");
    // Inside its own environment it is an admin: it manages that environment's keys.
    const own = (await c.createApiKey({ environmentId: s.devId, kind: ApiKeyKind.SERVER, name: "dev backend" })).apiKey!;
    expect((await c.listApiKeys({ environmentId: s.devId })).apiKeys.map((k) => k.id)).toContain(own.id);
    expect((await c.revokeApiKey({ id: own.id })).apiKey?.revokeTime).toBeDefined();
    // Production is untouched and still protected.
    const owner = h.client(IdentityService, s.t.ownerToken);
    expect((await owner.getEnvironment({ id: s.t.environmentId })).environment?.protected).toBe(true);
    expect((await owner.listApiKeys({ environmentId: s.t.environmentId })).apiKeys.map((k) => k.id)).toEqual([s.prodKey]);
  });

  it("keeps editors' hands off a protected environment (protected environment)", async () => {
    const s = await scopedTenant();
    const c = h.client(IdentityService, s.editorToken);
    await assertTenancyMatrix(IdentityService, productionMatrix(c, s, "allowed"), "protected environment");
  });

  it("leaves the victim's data untouched", async () => {
    const owner = h.client(IdentityService, victim.ownerToken);
    expect((await owner.getOrganization({ id: victim.orgId })).organization?.name).not.toBe("pwned");
    expect((await owner.listEnvironments({ projectId: victim.projectId })).environments).toHaveLength(1);
    const { members } = await owner.listMembers({ organizationId: victim.orgId });
    expect(members.map((m) => m.email)).not.toContain("spy@evil.test");
    expect((await owner.listApiKeys({ environmentId: victim.environmentId })).apiKeys.map((k) => k.id)).toContain(victimKeyId);
  });

  it("keeps AuthService inside the caller's own tenancy", async () => {
    await assertTenancyMatrix(AuthService, {
      exchangeApiKey: { notApplicable: "the key itself is the credential; tested in tokens.test.ts (unknown and revoked keys)" },
      exchangeOidcToken: {
        expect: Code.FailedPrecondition as never,
        call: () => h.client(AuthService).exchangeOidcToken({ idToken: "x".repeat(40), organizationId: victim.orgId }),
      },
      getSignInOptions: { notApplicable: "public and the same for everyone: the provider's issuer, client id and scopes (tested in oidc.test.ts)" },
      whoAmI: {
        notApplicable: "describes only the caller's token",
        check: async () => {
          const { principal } = await h.client(AuthService, attacker.ownerToken).whoAmI({});
          expect(principal?.organizationId).toBe(attacker.orgId);
        },
      },
    });
  });
});
