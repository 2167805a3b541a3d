import { toJsonString } from "@bufbuild/protobuf";
import { Code, ConnectError } from "@connectrpc/connect";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { AuthService } from "#gen/vane/identity/v1/auth_service_pb.js";
import { ApiKeyKind, ApiKeySchema, Role } from "#gen/vane/identity/v1/identity_pb.js";
import { IdentityService } from "#gen/vane/identity/v1/identity_service_pb.js";
import { type IdentityHarness, startIdentity, type Tenant } from "./harness.ts";

async function codeOf(p: Promise<unknown>): Promise<string> {
  try {
    await p;
    return "OK";
  } catch (err) {
    return Code[ConnectError.from(err).code];
  }
}

describe("IdentityService", () => {
  let h: IdentityHarness;
  let t: Tenant;
  beforeAll(async () => {
    h = await startIdentity();
    t = await h.seedTenant();
  });
  afterAll(() => h?.close());

  it("creates an organization with the caller as owner, and lists it", async () => {
    const c = h.client(IdentityService, t.ownerToken);
    const { organization } = await c.createOrganization({ name: "Acme", slug: `acme-${Date.now()}` });
    expect(organization?.id).toMatch(/^[0-9a-f-]{36}$/);
    const { organizations } = await c.listOrganizations({});
    expect(organizations.map((o) => o.id)).toEqual(expect.arrayContaining([t.orgId, organization!.id]));
    expect(await codeOf(c.createOrganization({ name: "Again", slug: organization!.slug }))).toBe("AlreadyExists");
  });

  it("manages projects and environments with keys unique per parent", async () => {
    const c = h.client(IdentityService, t.ownerToken);
    const { project } = await c.createProject({ organizationId: t.orgId, key: "mobile", name: "Mobile" });
    expect(await codeOf(c.createProject({ organizationId: t.orgId, key: "mobile", name: "Dup" }))).toBe("AlreadyExists");
    const envs = [];
    for (const key of ["development", "staging", "production"]) {
      envs.push((await c.createEnvironment({ projectId: project!.id, key, name: key })).environment!);
    }
    const { environments } = await c.listEnvironments({ projectId: project!.id });
    expect(environments.map((e) => e.key)).toEqual(["development", "staging", "production"]);
    expect(await codeOf(c.deleteProject({ id: project!.id }))).toBe("FailedPrecondition");
    for (const e of envs) await c.deleteEnvironment({ id: e.id });
    await c.deleteProject({ id: project!.id });
    expect(await codeOf(c.getProject({ id: project!.id }))).toBe("NotFound");
  });

  it("protects production by default, and lets an admin change protection", async () => {
    const c = h.client(IdentityService, t.ownerToken);
    const { project } = await c.createProject({ organizationId: t.orgId, key: `protect-${Date.now()}`, name: "Protect" });
    const create = (key: string, isProtected?: boolean) => c.createEnvironment({ projectId: project!.id, key, name: key, protected: isProtected });
    expect((await create("production")).environment?.protected).toBe(true);
    expect((await create("staging")).environment?.protected).toBe(false);
    expect((await create("production-eu", true)).environment?.protected).toBe(true);
    const { environment: lab } = await create("lab", false);
    const { environment: updated } = await c.updateEnvironment({ id: lab!.id, protected: true });
    expect(updated).toMatchObject({ id: lab!.id, name: "lab", protected: true });
    expect((await c.updateEnvironment({ id: lab!.id, name: "Lab" })).environment).toMatchObject({ name: "Lab", protected: true });
    expect((await c.getEnvironment({ id: lab!.id })).environment?.protected).toBe(true);
    expect(await codeOf(c.updateEnvironment({ id: lab!.id }))).toBe("InvalidArgument");
    expect(await codeOf(c.updateEnvironment({ id: lab!.id, name: "" }))).toBe("InvalidArgument");
  });

  it("pages through projects with opaque tokens", async () => {
    const c = h.client(IdentityService, t.ownerToken);
    for (let i = 0; i < 5; i++) await c.createProject({ organizationId: t.orgId, key: `paged-${i}`, name: `P${i}` });
    const seen: string[] = [];
    let pageToken = "";
    do {
      const page = await c.listProjects({ organizationId: t.orgId, pageSize: 2, pageToken });
      expect(page.projects.length).toBeLessThanOrEqual(2);
      seen.push(...page.projects.map((p) => p.key));
      pageToken = page.nextPageToken;
    } while (pageToken);
    expect(seen.filter((k) => k.startsWith("paged-"))).toEqual(["paged-0", "paged-1", "paged-2", "paged-3", "paged-4"]);
    expect(new Set(seen).size).toBe(seen.length);
    expect(await codeOf(c.listProjects({ organizationId: t.orgId, pageToken: "not-a-token" }))).toBe("InvalidArgument");
  });

  it("rejects invalid requests with INVALID_ARGUMENT naming the field", async () => {
    const c = h.client(IdentityService, t.ownerToken);
    const cases: Array<[() => Promise<unknown>, string]> = [
      [() => c.createProject({ organizationId: "not-a-uuid", key: "ok", name: "x" }), "organization_id"],
      [() => c.createProject({ organizationId: t.orgId, key: "Bad Key!", name: "x" }), "key"],
      [() => c.createOrganization({ name: "", slug: "fine-slug" }), "name"],
      [() => c.addMember({ organizationId: t.orgId, email: "not-an-email", role: Role.EDITOR }), "email"],
      [() => c.addMember({ organizationId: t.orgId, email: "a@b.test", role: Role.UNSPECIFIED }), "role"],
      [() => c.listProjects({ organizationId: t.orgId, pageSize: 10_000 }), "page_size"],
    ];
    for (const [call, field] of cases) {
      const err = await call().then(
        () => undefined,
        (e: unknown) => ConnectError.from(e),
      );
      expect(err?.code, field).toBe(Code.InvalidArgument);
      expect(err?.rawMessage).toContain(field);
    }
  });

  it("adds members, guards the last owner, and lets roles limit what a member can do", async () => {
    const owner = h.client(IdentityService, t.ownerToken);
    const { member } = await owner.addMember({ organizationId: t.orgId, email: `Editor-${Date.now()}@Example.test`, role: Role.EDITOR });
    expect(member?.email).toBe(member?.email.toLowerCase());
    expect(await codeOf(owner.addMember({ organizationId: t.orgId, email: member!.email, role: Role.VIEWER }))).toBe("AlreadyExists");
    expect(await codeOf(owner.removeMember({ memberId: t.ownerMemberId }))).toBe("FailedPrecondition");
    expect(await codeOf(owner.updateMemberRole({ memberId: t.ownerMemberId, role: Role.ADMIN }))).toBe("FailedPrecondition");

    const editorToken = await h.sign({ sub: member!.userId, org: t.orgId, role: "editor", kind: "user" });
    const editor = h.client(IdentityService, editorToken);
    expect(await codeOf(editor.listProjects({ organizationId: t.orgId }))).toBe("OK");
    expect(await codeOf(editor.createProject({ organizationId: t.orgId, key: "nope", name: "x" }))).toBe("PermissionDenied");
    expect(await codeOf(editor.updateMemberRole({ memberId: member!.id, role: Role.OWNER }))).toBe("PermissionDenied");

    const { member: promoted } = await owner.updateMemberRole({ memberId: member!.id, role: Role.ADMIN });
    expect(promoted?.role).toBe(Role.ADMIN);
    const adminToken = await h.sign({ sub: member!.userId, org: t.orgId, role: "admin", kind: "user" });
    // Admins manage members but cannot touch owners.
    expect(await codeOf(h.client(IdentityService, adminToken).removeMember({ memberId: t.ownerMemberId }))).toBe("PermissionDenied");
    await owner.removeMember({ memberId: member!.id });
    const { members } = await owner.listMembers({ organizationId: t.orgId });
    expect(members.map((m) => m.id)).not.toContain(member!.id);
  });

  it("creates API keys whose secret is shown once and only hashed at rest", async () => {
    const c = h.client(IdentityService, t.ownerToken);
    const { apiKey, secret } = await c.createApiKey({ environmentId: t.environmentId, kind: ApiKeyKind.SERVER, name: "backend" });
    expect(secret).toMatch(/^vane_server_/);
    expect(apiKey?.prefix && secret.startsWith(apiKey.prefix)).toBe(true);
    const { apiKeys } = await c.listApiKeys({ environmentId: t.environmentId });
    const listed = apiKeys.find((k) => k.id === apiKey!.id)!;
    expect(toJsonString(ApiKeySchema, listed)).not.toContain(secret.slice(12));
    const stored = await h.module.database.db.selectFrom("api_keys").selectAll().where("id", "=", apiKey!.id).executeTakeFirstOrThrow();
    expect(JSON.stringify(stored)).not.toContain(secret.slice(12));
    expect(stored.secret_hash.length).toBe(32);
    expect(listed.lastUsedTime).toBeUndefined();

    const auth = h.client(AuthService);
    const exchanged = await auth.exchangeApiKey({ apiKey: secret });
    expect(exchanged.principal?.environmentId).toBe(t.environmentId);
    expect(exchanged.principal?.keyKind).toBe(ApiKeyKind.SERVER);
    const after = (await c.listApiKeys({ environmentId: t.environmentId })).apiKeys.find((k) => k.id === apiKey!.id)!;
    expect(after.lastUsedTime).toBeDefined();

    expect(await codeOf(c.createApiKey({ kind: ApiKeyKind.SERVER, name: "no env" }))).toBe("InvalidArgument");
    expect(await codeOf(c.createApiKey({ environmentId: t.environmentId, kind: ApiKeyKind.PERSONAL, name: "x" }))).toBe("InvalidArgument");
  });

  it("lets a personal key act as its member, and an admin key only inside its environment's project", async () => {
    const c = h.client(IdentityService, t.ownerToken);
    const personal = await c.createApiKey({ kind: ApiKeyKind.PERSONAL, name: "cli" });
    const auth = h.client(AuthService);
    const asPerson = await auth.exchangeApiKey({ apiKey: personal.secret });
    expect(asPerson.principal).toMatchObject({ subject: t.ownerUserId, organizationId: t.orgId, role: Role.OWNER, keyKind: ApiKeyKind.PERSONAL });
    expect((await c.listApiKeys({})).apiKeys.map((k) => k.id)).toContain(personal.apiKey!.id);

    const admin = await c.createApiKey({ environmentId: t.environmentId, kind: ApiKeyKind.ADMIN, name: "ci" });
    const adminToken = (await auth.exchangeApiKey({ apiKey: admin.secret })).accessToken;
    const asAdmin = h.client(IdentityService, adminToken);
    const { project: other } = await c.createProject({ organizationId: t.orgId, key: `other-${Date.now()}`, name: "Other" });
    expect(await codeOf(asAdmin.getProject({ id: t.projectId }))).toBe("OK");
    expect(await codeOf(asAdmin.getProject({ id: other!.id }))).toBe("NotFound");
    expect((await asAdmin.listProjects({ organizationId: t.orgId })).projects.map((p) => p.id)).toEqual([t.projectId]);
    expect(await codeOf(asAdmin.createProject({ organizationId: t.orgId, key: "x", name: "x" }))).toBe("PermissionDenied");
    expect(await codeOf(asAdmin.listMembers({ organizationId: t.orgId }))).toBe("PermissionDenied");
  });
});
