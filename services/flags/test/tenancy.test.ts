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
import { assertTenancyMatrix } from "#lib/test-tenancy.ts";
import { type FlagsHarness, startFlags, type Tenant } from "./harness.ts";

const variants = [create(VariantSchema, { key: "on", value: fromJson(ValueSchema, true) }), create(VariantSchema, { key: "off", value: fromJson(ValueSchema, false) })];
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
        const created = await h.client(IdentityService, attacker.ownerToken).createApiKey(
          as === "admin key" ? { environmentId: attacker.environmentId, kind: ApiKeyKind.ADMIN, name: "a" } : { kind: ApiKeyKind.PERSONAL, name: "p" },
        );
        token = (await h.client(AuthService).exchangeApiKey({ apiKey: created.secret })).accessToken;
      }
      const f = h.client(FlagService, token);
      const s = h.client(SegmentService, token);
      const absent = { orgId: "", projectId: "00000000-0000-4000-8000-000000000000", environmentId: "00000000-0000-4000-8000-000000000001" };
      for (const target of [victim, absent]) {
        const { projectId, environmentId } = target;
        await assertTenancyMatrix(FlagService, {
          createFlag: { expect: Code.NotFound, call: () => f.createFlag({ projectId, key: "x", name: "x", type: FlagType.BOOLEAN, variants }) },
          getFlag: { expect: Code.NotFound, call: () => f.getFlag({ projectId, key: "secret" }) },
          listFlags: { expect: Code.NotFound, call: () => f.listFlags({ projectId }) },
          updateFlag: { expect: Code.NotFound, call: () => f.updateFlag({ projectId, key: "secret", expectedVersion: 1n, name: "pwned", variants }) },
          archiveFlag: { expect: Code.NotFound, call: () => f.archiveFlag({ projectId, key: "secret", expectedVersion: 1n }) },
          unarchiveFlag: { expect: Code.NotFound, call: () => f.unarchiveFlag({ projectId, key: "secret", expectedVersion: 1n }) },
          updateFlagEnvironment: { expect: Code.NotFound, call: () => f.updateFlagEnvironment({ environmentId, flagKey: "secret", expectedVersion: 1n, enabled: false }) },
          listAuditEntries: { expect: Code.NotFound, call: () => f.listAuditEntries({ projectId }) },
          importFlagd: { expect: Code.NotFound, call: () => f.importFlagd({ environmentId, flagdJson: flagd }) },
          exportFlagd: { expect: Code.NotFound, call: () => f.exportFlagd({ environmentId }) },
          revertAuditEntry: { expect: Code.NotFound, call: () => f.revertAuditEntry({ projectId, auditEntryId: victimAuditId, expectedVersion: 1n }) },
        });
        await assertTenancyMatrix(SegmentService, {
          createSegment: { expect: Code.NotFound, call: () => s.createSegment({ projectId, key: "x", name: "x" }) },
          getSegment: { expect: Code.NotFound, call: () => s.getSegment({ projectId, key: "vips" }) },
          listSegments: { expect: Code.NotFound, call: () => s.listSegments({ projectId }) },
          updateSegment: { expect: Code.NotFound, call: () => s.updateSegment({ projectId, key: "vips", expectedVersion: 1n, name: "x" }) },
          deleteSegment: { expect: Code.NotFound, call: () => s.deleteSegment({ projectId, key: "vips", expectedVersion: 1n }) },
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

  it("does not revert another organization's audit entry through one's own project", async () => {
    const f = h.client(FlagService, attacker.ownerToken);
    await expect(f.revertAuditEntry({ projectId: attacker.projectId, auditEntryId: victimAuditId, expectedVersion: 1n })).rejects.toMatchObject({ code: Code.NotFound });
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
