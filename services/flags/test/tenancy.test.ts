import { create, fromJson } from "@bufbuild/protobuf";
import { ValueSchema } from "@bufbuild/protobuf/wkt";
import { Code } from "@connectrpc/connect";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { FlagService } from "#gen/vane/flags/v1/flag_service_pb.js";
import { FlagType, VariantSchema } from "#gen/vane/flags/v1/flags_pb.js";
import { AuthService } from "#gen/vane/identity/v1/auth_service_pb.js";
import { ApiKeyKind } from "#gen/vane/identity/v1/identity_pb.js";
import { IdentityService } from "#gen/vane/identity/v1/identity_service_pb.js";
import { SegmentService } from "#gen/vane/flags/v1/segment_service_pb.js";
import { ChangeService } from "#gen/vane/flags/v1/change_service_pb.js";
import { assertTenancyMatrix, type TenancyDimension } from "#test/support/tenancy.ts";
import { type FlagsHarness, startFlags, type Tenant } from "./harness.ts";

const variants = [
  create(VariantSchema, { key: "on", value: fromJson(ValueSchema, true) }),
  create(VariantSchema, { key: "off", value: fromJson(ValueSchema, false) }),
];
const flagd = JSON.stringify({ flags: { f: { state: "ENABLED", variants: { on: true, off: false }, defaultVariant: "on" } } });

describe("tenancy", () => {
  let h: FlagsHarness;
  let victim: Tenant;
  let attacker: Tenant;
  let victimAuditId: bigint;
  beforeAll(async () => {
    h = await startFlags();
    victim = await h.seedTenant();
    attacker = await h.seedTenant();
    const flags = h.client(FlagService, victim.ownerToken);
    await flags.createFlag({ projectId: victim.projectId, key: "secret", name: "Secret", type: FlagType.BOOLEAN, variants });
    await flags.updateFlagEnvironment({ environmentId: victim.environmentId, flagKey: "secret", enabled: true, defaultVariant: "on" });
    await h.client(SegmentService, victim.ownerToken).createSegment({ projectId: victim.projectId, key: "vips", name: "VIPs", includedKeys: ["a"] });
    // A revertible entry of the victim's (the environment change).
    victimAuditId = (await flags.listAuditEntries({ projectId: victim.projectId, environmentId: victim.environmentId })).entries[0].id;
  });
  afterAll(() => h?.close());

  // Run the matrix as each kind of foreign principal, against the victim's ids and against ids
  // that never existed: nothing distinguishes "foreign" from "absent".
  for (const as of ["owner", "admin key", "personal key"] as const) {
    it(`hides every flags object of another organization from its ${as}`, async () => {
      let token = attacker.ownerToken;
      if (as !== "owner") {
        const created = await h
          .client(IdentityService, attacker.ownerToken)
          .createApiKey(
            as === "admin key" ? { environmentId: attacker.environmentId, kind: ApiKeyKind.ADMIN, name: "a" } : { kind: ApiKeyKind.PERSONAL, name: "p" },
          );
        token = (await h.client(AuthService).exchangeApiKey({ apiKey: created.secret })).accessToken;
      }
      const f = h.client(FlagService, token);
      const s = h.client(SegmentService, token);
      // An admin key is bound to its environment: changes to another environment, or shared by
      // every environment, are refused before any lookup.
      const keyScoped = as === "admin key" ? Code.PermissionDenied : Code.NotFound;
      const absent = { orgId: "", projectId: "00000000-0000-4000-8000-000000000000", environmentId: "00000000-0000-4000-8000-000000000001" };
      for (const target of [victim, absent]) {
        const { projectId, environmentId } = target;
        await assertTenancyMatrix(FlagService, {
          createFlag: { expect: Code.NotFound, call: () => f.createFlag({ projectId, key: "x", name: "x", type: FlagType.BOOLEAN, variants }) },
          getFlag: { expect: Code.NotFound, call: () => f.getFlag({ projectId, key: "secret" }) },
          listFlags: { expect: Code.NotFound, call: () => f.listFlags({ projectId }) },
          updateFlag: { expect: keyScoped, call: () => f.updateFlag({ projectId, key: "secret", expectedVersion: 1n, name: "pwned", variants }) },
          archiveFlag: { expect: keyScoped, call: () => f.archiveFlag({ projectId, key: "secret", expectedVersion: 1n }) },
          unarchiveFlag: { expect: keyScoped, call: () => f.unarchiveFlag({ projectId, key: "secret", expectedVersion: 1n }) },
          updateFlagEnvironment: {
            expect: keyScoped,
            call: () => f.updateFlagEnvironment({ environmentId, flagKey: "secret", expectedVersion: 1n, enabled: false }),
          },
          listAuditEntries: { expect: Code.NotFound, call: () => f.listAuditEntries({ projectId }) },
          importFlagd: { expect: keyScoped, call: () => f.importFlagd({ environmentId, flagdJson: flagd }) },
          exportFlagd: { expect: Code.NotFound, call: () => f.exportFlagd({ environmentId }) },
          revertAuditEntry: { expect: Code.NotFound, call: () => f.revertAuditEntry({ projectId, auditEntryId: victimAuditId, expectedVersion: 1n }) },
          republishSnapshot: { expect: keyScoped, call: () => f.republishSnapshot({ environmentId }) },
        });
        await assertTenancyMatrix(SegmentService, {
          createSegment: { expect: Code.NotFound, call: () => s.createSegment({ projectId, key: "x", name: "x" }) },
          getSegment: { expect: Code.NotFound, call: () => s.getSegment({ projectId, key: "vips" }) },
          listSegments: { expect: Code.NotFound, call: () => s.listSegments({ projectId }) },
          updateSegment: { expect: keyScoped, call: () => s.updateSegment({ projectId, key: "vips", expectedVersion: 1n, name: "x" }) },
          deleteSegment: { expect: keyScoped, call: () => s.deleteSegment({ projectId, key: "vips", expectedVersion: 1n }) },
        });
        const c = h.client(ChangeService, token);
        await assertTenancyMatrix(ChangeService, {
          watchChanges: {
            expect: Code.NotFound,
            call: async () => {
              for await (const _ of c.watchChanges({ projectId })) break;
            },
          },
        });
      }
    });
  }

  it("keeps a project-scoped admin key inside its own project", async () => {
    // A second project in the attacker's own organization, outside the admin key's project.
    const other = await h.seedTenant();
    const created = await h.client(IdentityService, other.ownerToken).createApiKey({ environmentId: other.environmentId, kind: ApiKeyKind.ADMIN, name: "a" });
    const token = (await h.client(AuthService).exchangeApiKey({ apiKey: created.secret })).accessToken;
    const db = h.identity.database.db;
    const projectId = "10000000-0000-4000-8000-000000000000";
    const environmentId = "10000000-0000-4000-8000-000000000001";
    await db.insertInto("projects").values({ id: projectId, organization_id: other.orgId, key: "api", name: "API" }).execute();
    await db.insertInto("environments").values({ id: environmentId, project_id: projectId, organization_id: other.orgId, key: "prod", name: "Prod" }).execute();
    const f = h.client(FlagService, token);
    expect((await f.listFlags({ projectId: other.projectId })).flags).toEqual([]);
    await expect(f.listFlags({ projectId })).rejects.toMatchObject({ code: Code.NotFound });
    await expect(f.exportFlagd({ environmentId })).rejects.toMatchObject({ code: Code.NotFound });
  });

  /**
   * A tenant of its own whose production (protected) holds a configured flag "e" with an audit
   * entry, flags "u", "a" and "z" (archived), segments "s1" and "s2", and callers: an admin key of
   * staging, an editor, an admin.
   */
  async function productionTenant() {
    const t = await h.seedTenant();
    const flags = h.client(FlagService, t.ownerToken);
    for (const key of ["e", "u", "a", "z"]) await flags.createFlag({ projectId: t.projectId, key, name: key, type: FlagType.BOOLEAN, variants });
    await flags.archiveFlag({ projectId: t.projectId, key: "z", expectedVersion: 1n });
    await flags.updateFlagEnvironment({ environmentId: t.environmentId, flagKey: "e", enabled: true, defaultVariant: "on" });
    const prodEntry = (await flags.listAuditEntries({ projectId: t.projectId, environmentId: t.environmentId })).entries[0].id;
    for (const key of ["s1", "s2"]) await h.client(SegmentService, t.ownerToken).createSegment({ projectId: t.projectId, key, name: key, includedKeys: ["a"] });
    await h.client(IdentityService, t.ownerToken).updateEnvironment({ id: t.environmentId, protected: true });
    const created = await h.client(IdentityService, t.ownerToken).createApiKey({ environmentId: t.stagingId, kind: ApiKeyKind.ADMIN, name: "staging admin" });
    const stagingAdmin = (await h.client(AuthService).exchangeApiKey({ apiKey: created.secret })).accessToken;
    return { t, prodEntry, stagingAdmin, editor: (await h.member(t, "editor")).token, admin: (await h.member(t, "admin")).token };
  }

  /** FlagService and SegmentService against production; `shared` is what changes shared by every environment give. */
  async function productionMatrix(
    token: string,
    x: Awaited<ReturnType<typeof productionTenant>>,
    shared: Code.PermissionDenied | "allowed",
    dimension: TenancyDimension,
  ) {
    const f = h.client(FlagService, token);
    const s = h.client(SegmentService, token);
    const { projectId, environmentId } = x.t;
    const denied = Code.PermissionDenied;
    await assertTenancyMatrix(
      FlagService,
      {
        createFlag: { expect: "allowed", call: () => f.createFlag({ projectId, key: "new", name: "new", type: FlagType.BOOLEAN, variants }) },
        getFlag: { expect: "allowed", call: () => f.getFlag({ projectId, key: "e" }) },
        listFlags: { expect: "allowed", call: () => f.listFlags({ projectId }) },
        updateFlag: { expect: shared, call: () => f.updateFlag({ projectId, key: "u", expectedVersion: 1n, name: "renamed", variants }) },
        archiveFlag: { expect: shared, call: () => f.archiveFlag({ projectId, key: "a", expectedVersion: 1n }) },
        unarchiveFlag: { expect: shared, call: () => f.unarchiveFlag({ projectId, key: "z", expectedVersion: 2n }) },
        updateFlagEnvironment: { expect: denied, call: () => f.updateFlagEnvironment({ environmentId, flagKey: "e", expectedVersion: 1n, enabled: false }) },
        listAuditEntries: { expect: "allowed", call: () => f.listAuditEntries({ projectId, environmentId }) },
        importFlagd: { expect: denied, call: () => f.importFlagd({ environmentId, flagdJson: flagd }) },
        exportFlagd: { expect: "allowed", call: () => f.exportFlagd({ environmentId }) },
        revertAuditEntry: { expect: denied, call: () => f.revertAuditEntry({ projectId, auditEntryId: x.prodEntry, expectedVersion: 1n }) },
        republishSnapshot: { expect: denied, call: () => f.republishSnapshot({ environmentId }) },
      },
      dimension,
    );
    await assertTenancyMatrix(
      SegmentService,
      {
        createSegment: { expect: "allowed", call: () => s.createSegment({ projectId, key: "new", name: "new" }) },
        getSegment: { expect: "allowed", call: () => s.getSegment({ projectId, key: "s1" }) },
        listSegments: { expect: "allowed", call: () => s.listSegments({ projectId }) },
        updateSegment: { expect: shared, call: () => s.updateSegment({ projectId, key: "s1", expectedVersion: 1n, name: "renamed", includedKeys: ["b"] }) },
        deleteSegment: { expect: shared, call: () => s.deleteSegment({ projectId, key: "s2", expectedVersion: 1n }) },
      },
      dimension,
    );
    // Production's targeting is as it was.
    const { environments } = await h.client(FlagService, x.t.ownerToken).getFlag({ projectId, key: "e" });
    expect(environments.find((e) => e.environmentId === environmentId)).toMatchObject({ enabled: true, version: 1n });
  }

  it("keeps an admin key inside its environment (environment scope)", async () => {
    const x = await productionTenant();
    await productionMatrix(x.stagingAdmin, x, Code.PermissionDenied, "environment scope");
    // In its own environment it changes targeting, imports new flags and reverts its changes…
    const f = h.client(FlagService, x.stagingAdmin);
    await f.updateFlagEnvironment({ environmentId: x.t.stagingId, flagKey: "e", enabled: true, defaultVariant: "off" });
    const imported = await f.importFlagd({
      environmentId: x.t.stagingId,
      flagdJson: JSON.stringify({ flags: { fresh: { state: "ENABLED", variants: { on: true, off: false }, defaultVariant: "on" } } }),
    });
    expect(imported.createdFlagKeys).toEqual(["fresh"]);
    const entry = (await f.listAuditEntries({ projectId: x.t.projectId, environmentId: x.t.stagingId, flagKey: "e" })).entries[0].id;
    await f.revertAuditEntry({ projectId: x.t.projectId, auditEntryId: entry, expectedVersion: 1n });
    // …but an import that would change an existing flag's variants (shared by every environment) is refused, and changes nothing.
    const changesVariants = JSON.stringify({ flags: { e: { state: "ENABLED", variants: { on: false, off: true }, defaultVariant: "on" } } });
    await expect(f.importFlagd({ environmentId: x.t.stagingId, flagdJson: changesVariants })).rejects.toMatchObject({ code: Code.PermissionDenied });
    expect((await f.getFlag({ projectId: x.t.projectId, key: "e" })).flag?.version).toBe(1n);
  });

  it("keeps editors out of a protected environment, from the next change on (protected environment)", async () => {
    const x = await productionTenant();
    await productionMatrix(x.editor, x, "allowed", "protected environment");
    // Editors still change unprotected environments; admins change protected ones.
    await h.client(FlagService, x.editor).updateFlagEnvironment({ environmentId: x.t.stagingId, flagKey: "e", enabled: true, defaultVariant: "on" });
    await h.client(FlagService, x.admin).updateFlagEnvironment({ environmentId: x.t.environmentId, flagKey: "e", expectedVersion: 1n, enabled: false });
    // Protection binds at once, though the environment was resolved (and cached) before.
    const identity = h.client(IdentityService, x.t.ownerToken);
    await identity.updateEnvironment({ id: x.t.stagingId, protected: true });
    await expect(
      h.client(FlagService, x.editor).updateFlagEnvironment({ environmentId: x.t.stagingId, flagKey: "e", expectedVersion: 1n, enabled: false }),
    ).rejects.toMatchObject({
      code: Code.PermissionDenied,
      message: expect.stringContaining(`environment "staging" is protected`),
    });
  });

  it("does not revert another organization's audit entry through one's own project", async () => {
    const f = h.client(FlagService, attacker.ownerToken);
    await expect(f.revertAuditEntry({ projectId: attacker.projectId, auditEntryId: victimAuditId, expectedVersion: 1n })).rejects.toMatchObject({
      code: Code.NotFound,
    });
  });

  it("leaves the victim's data untouched", async () => {
    const flags = h.client(FlagService, victim.ownerToken);
    const got = await flags.getFlag({ projectId: victim.projectId, key: "secret" });
    expect(got.flag?.name).toBe("Secret");
    expect(got.flag?.version).toBe(1n);
    expect(got.environments[0].enabled).toBe(true);
    expect((await flags.listFlags({ projectId: victim.projectId })).flags.map((f) => f.key)).toEqual(["secret"]);
    const { entries } = await flags.listAuditEntries({ projectId: victim.projectId });
    expect(entries.every((e) => e.actor === victim.ownerUserId)).toBe(true);
  });
});
