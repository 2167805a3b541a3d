/** RevertAuditEntry: an audit entry's before-state re-applied as a new, optimistic, audited change. */
import { create, fromJson, type JsonValue, toJson } from "@bufbuild/protobuf";
import { ValueSchema } from "@bufbuild/protobuf/wkt";
import { type Client, Code } from "@connectrpc/connect";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { VersionConflictSchema } from "#gen/vane/flags/v1/errors_pb.js";
import { FlagService } from "#gen/vane/flags/v1/flag_service_pb.js";
import { FlagType, type Rule, RuleSchema, VariantSchema } from "#gen/vane/flags/v1/flags_pb.js";
import { SegmentService } from "#gen/vane/flags/v1/segment_service_pb.js";
import { failure } from "#test/support/harness.ts";
import { type FlagsHarness, startFlags, type Tenant } from "./harness.ts";
import { decodeStoredSnapshot } from "#lib/bus/snapshots.ts";

const v = (x: JsonValue) => fromJson(ValueSchema, x);
const colors = ["red", "green", "blue"].map((c) => create(VariantSchema, { key: c, value: v(c) }));
const serve = (variant: string): Rule => create(RuleSchema, { id: `to-${variant}`, outcome: { kind: { case: "variant", value: variant } } });

describe("RevertAuditEntry", () => {
  let h: FlagsHarness;
  let t: Tenant;
  let flags: Client<typeof FlagService>;
  beforeAll(async () => {
    h = await startFlags();
    t = await h.seedTenant();
    flags = h.client(FlagService, t.ownerToken);
  });
  afterAll(() => h?.close());

  const latest = async (flagKey: string) => (await flags.listAuditEntries({ projectId: t.projectId, flagKey, pageSize: 1 })).entries[0];

  it("restores a flag's definition, optimistically, and records the revert", async () => {
    await flags.createFlag({ projectId: t.projectId, key: "banner", name: "Banner", tags: ["web"], owner: "design", type: FlagType.STRING, variants: colors });
    await flags.updateFlag({
      projectId: t.projectId,
      key: "banner",
      expectedVersion: 1n,
      name: "Oops",
      tags: [],
      owner: "nobody",
      variants: colors,
      clientVisible: true,
    });
    const bad = await latest("banner");
    expect(bad.action).toBe("flag.update");

    const stale = await failure(flags.revertAuditEntry({ projectId: t.projectId, auditEntryId: bad.id, expectedVersion: 1n, reason: "stale" }));
    expect(stale.code).toBe(Code.Aborted);
    expect(stale.findDetails(VersionConflictSchema)[0]).toMatchObject({ currentVersion: 2n });

    const res = await flags.revertAuditEntry({ projectId: t.projectId, auditEntryId: bad.id, expectedVersion: 2n, reason: "wrong rename" });
    expect(res.flag).toMatchObject({ name: "Banner", tags: ["web"], owner: "design", clientVisible: false, version: 3n });
    const entry = await latest("banner");
    expect(entry).toMatchObject({ id: res.auditEntryId, action: "flag.revert", actor: t.ownerUserId, reason: `revert of audit entry ${bad.id}: wrong rename` });
    expect(toJson(ValueSchema, entry.before!)).toMatchObject({ name: "Oops", version: "2" });
    expect(toJson(ValueSchema, entry.after!)).toMatchObject({ name: "Banner", version: "3" });

    // Archiving is undone too.
    await flags.archiveFlag({ projectId: t.projectId, key: "banner", expectedVersion: 3n });
    const archived = await latest("banner");
    expect((await flags.revertAuditEntry({ projectId: t.projectId, auditEntryId: archived.id, expectedVersion: 4n })).flag?.archived).toBe(false);
  });

  it("restores a flag's configuration in an environment and publishes it as a new config version", async () => {
    const first = await flags.updateFlagEnvironment({
      environmentId: t.environmentId,
      flagKey: "banner",
      enabled: true,
      defaultVariant: "red",
      rules: [serve("green")],
    });
    const second = await flags.updateFlagEnvironment({
      environmentId: t.environmentId,
      flagKey: "banner",
      expectedVersion: 1n,
      enabled: true,
      defaultVariant: "blue",
      rules: [serve("blue")],
    });
    const bad = await latest("banner");
    expect(bad.action).toBe("flag.environment.update");

    const res = await flags.revertAuditEntry({ projectId: t.projectId, auditEntryId: bad.id, expectedVersion: 2n, reason: "bad rollout" });
    expect(res.environment).toMatchObject({ enabled: true, defaultVariant: "red", version: 3n });
    expect(res.environment?.rules.map((r) => r.id)).toEqual(["to-green"]);
    expect(res.configVersion).toBe(second.configVersion + 1n);
    expect(first.configVersion).toBeLessThan(second.configVersion);
    expect(await latest("banner")).toMatchObject({ action: "flag.environment.revert", environmentId: t.environmentId });

    // Evaluators get it like any change: through the outbox, as the next snapshot.
    let snap;
    for (let i = 0; i < 100; i++) {
      const e = await h.flags.snapshots.get(t.environmentId);
      snap = e ? await decodeStoredSnapshot(h.flags.snapshots, e.value) : undefined;
      if (snap && snap.version >= res.configVersion) break;
      await new Promise((r) => setTimeout(r, 50));
    }
    expect(snap?.version).toBe(res.configVersion);
    const banner = snap!.flags.find((f) => f.key === "banner")!;
    expect(banner.defaultVariant).toBe("red");
    expect(toJson(ValueSchema, banner.targeting!)).toEqual({ if: [true, "green", null] });

    // The first configuration had no before-state: reverting it turns the flag off, no rules.
    const firstEntry = (await flags.listAuditEntries({ projectId: t.projectId, flagKey: "banner", environmentId: t.environmentId })).entries.at(-1)!;
    expect(firstEntry.before).toBeDefined();
    expect(toJson(ValueSchema, firstEntry.before!)).toBeNull();
    const off = await flags.revertAuditEntry({ projectId: t.projectId, auditEntryId: firstEntry.id, expectedVersion: 3n });
    expect(off.environment).toMatchObject({ enabled: false, defaultVariant: "", rules: [], version: 4n });
  });

  it("refuses entries whose before-state cannot be re-applied, saying why", async () => {
    const created = (await flags.listAuditEntries({ projectId: t.projectId, flagKey: "banner" })).entries.at(-1)!;
    expect(created.action).toBe("flag.create");
    const noBefore = await failure(flags.revertAuditEntry({ projectId: t.projectId, auditEntryId: created.id, expectedVersion: 5n }));
    expect(noBefore.code).toBe(Code.FailedPrecondition);
    expect(noBefore.rawMessage).toMatch(/no earlier state to restore; archive the flag instead/);

    await h.client(SegmentService, t.ownerToken).createSegment({ projectId: t.projectId, key: "vip", name: "VIP", includedKeys: ["a"] });
    const seg = (await flags.listAuditEntries({ projectId: t.projectId, segmentKey: "vip" })).entries[0];
    const segErr = await failure(flags.revertAuditEntry({ projectId: t.projectId, auditEntryId: seg.id, expectedVersion: 1n }));
    expect(segErr.code).toBe(Code.FailedPrecondition);
    expect(segErr.rawMessage).toMatch(/segment "vip": only flag and flag-environment changes can be reverted/);

    // A before-state that uses a variant the flag no longer has.
    await flags.updateFlagEnvironment({ environmentId: t.stagingId, flagKey: "banner", enabled: true, defaultVariant: "blue", rules: [] });
    await flags.updateFlagEnvironment({ environmentId: t.stagingId, flagKey: "banner", expectedVersion: 1n, enabled: true, defaultVariant: "red", rules: [] });
    const usedBlue = await latest("banner");
    const { flag } = await flags.getFlag({ projectId: t.projectId, key: "banner" });
    await flags.updateFlag({ projectId: t.projectId, key: "banner", expectedVersion: flag!.version, name: "Banner", variants: colors.slice(0, 2) });
    const gone = await failure(flags.revertAuditEntry({ projectId: t.projectId, auditEntryId: usedBlue.id, expectedVersion: 2n }));
    expect(gone.code).toBe(Code.FailedPrecondition);
    expect(gone.rawMessage).toMatch(/no longer applies: default_variant: unknown variant "blue"/);

    // An archived flag is not unarchived (nor reconfigured) by undoing an older edit.
    const edit = await latest("banner");
    expect(edit.action).toBe("flag.update");
    const archived = await flags.archiveFlag({ projectId: t.projectId, key: "banner", expectedVersion: flag!.version + 1n });
    const whileArchived = await failure(flags.revertAuditEntry({ projectId: t.projectId, auditEntryId: edit.id, expectedVersion: archived.flag!.version }));
    expect(whileArchived.code).toBe(Code.FailedPrecondition);
    expect(whileArchived.rawMessage).toMatch(/is archived; unarchive it before reverting/);
    const envWhileArchived = await failure(flags.revertAuditEntry({ projectId: t.projectId, auditEntryId: usedBlue.id, expectedVersion: 2n }));
    expect(envWhileArchived.rawMessage).toMatch(/is archived; unarchive it before reverting its configuration/);

    expect((await failure(flags.revertAuditEntry({ projectId: t.projectId, auditEntryId: 999_999n, expectedVersion: 1n }))).code).toBe(Code.NotFound);
    const viewer = h.client(FlagService, (await h.member(t, "viewer")).token);
    expect((await failure(viewer.revertAuditEntry({ projectId: t.projectId, auditEntryId: usedBlue.id, expectedVersion: 2n }))).code).toBe(
      Code.PermissionDenied,
    );
  });
});
