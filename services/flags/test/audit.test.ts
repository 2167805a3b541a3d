import { create, fromJson, toJson } from "@bufbuild/protobuf";
import { ValueSchema } from "@bufbuild/protobuf/wkt";
import { type Client } from "@connectrpc/connect";
import { sql } from "kysely";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { FlagService } from "#gen/vane/flags/v1/flag_service_pb.js";
import { type AuditEntry, FlagType, Operator, VariantSchema } from "#gen/vane/flags/v1/flags_pb.js";
import { SegmentService } from "#gen/vane/flags/v1/segment_service_pb.js";
import { type FlagsHarness, startFlags, type Tenant } from "./harness.ts";

const value = (x: Parameters<typeof fromJson<typeof ValueSchema>>[1]) => fromJson(ValueSchema, x);
const variants = [create(VariantSchema, { key: "on", value: value(true) }), create(VariantSchema, { key: "off", value: value(false) })];
const json = (e: AuditEntry) =>
  ({ before: e.before ? toJson(ValueSchema, e.before) : null, after: e.after ? toJson(ValueSchema, e.after) : null }) as { before: any; after: any };

describe("audit log", () => {
  let h: FlagsHarness;
  let t: Tenant;
  let flags: Client<typeof FlagService>;
  let segments: Client<typeof SegmentService>;
  let count = 0;
  beforeAll(async () => {
    h = await startFlags();
    t = await h.seedTenant();
    flags = h.client(FlagService, t.ownerToken);
    segments = h.client(SegmentService, t.ownerToken);
  });
  afterAll(() => h?.close());

  const all = async () => {
    const out: AuditEntry[] = [];
    let pageToken = "";
    do {
      const page = await flags.listAuditEntries({ projectId: t.projectId, pageSize: 3, pageToken });
      out.push(...page.entries);
      pageToken = page.nextPageToken;
    } while (pageToken);
    return out;
  };
  /** Runs a mutation and returns the one entry it added. */
  const one = async (fn: () => Promise<unknown>): Promise<AuditEntry> => {
    await fn();
    const entries = await all();
    expect(entries).toHaveLength(count + 1);
    count++;
    return entries[0];
  };
  /** Runs reads and checks they added nothing. */
  const none = async (fn: () => Promise<unknown>) => {
    await fn();
    expect(await all()).toHaveLength(count);
  };

  it("records every mutation exactly once with who, what, before, after and why; reads record nothing", async () => {
    let e = await one(() => flags.createFlag({ projectId: t.projectId, key: "f", name: "F", type: FlagType.BOOLEAN, variants, reason: "launch" }));
    expect(e).toMatchObject({ action: "flag.create", flagKey: "f", actor: t.ownerUserId, actorKind: "user", reason: "launch", projectId: t.projectId });
    expect(json(e).before).toBeNull();
    expect(json(e).after).toMatchObject({ key: "f", name: "F", version: "1" });

    e = await one(() => flags.updateFlag({ projectId: t.projectId, key: "f", expectedVersion: 1n, name: "F2", variants, reason: "rename" }));
    expect(e.action).toBe("flag.update");
    expect(json(e).before).toMatchObject({ name: "F", version: "1" });
    expect(json(e).after).toMatchObject({ name: "F2", version: "2" });

    e = await one(() => flags.updateFlagEnvironment({ environmentId: t.environmentId, flagKey: "f", enabled: true, defaultVariant: "on", reason: "turn on" }));
    expect(e).toMatchObject({ action: "flag.environment.update", environmentId: t.environmentId, flagKey: "f", reason: "turn on" });
    expect(json(e).before).toBeNull();
    expect(json(e).after).toMatchObject({ enabled: true, defaultVariant: "on", version: "1" });

    e = await one(() =>
      flags.updateFlagEnvironment({ environmentId: t.environmentId, flagKey: "f", expectedVersion: 1n, enabled: false, defaultVariant: "off" }),
    );
    expect(json(e).before).toMatchObject({ enabled: true, defaultVariant: "on" });
    expect(json(e).after).toMatchObject({ enabled: false, defaultVariant: "off", version: "2" });

    e = await one(() =>
      segments.createSegment({
        projectId: t.projectId,
        key: "s",
        name: "S",
        conditions: [{ kind: { case: "attribute", value: { attribute: "plan", operator: Operator.EQUALS, values: [value("pro")] } } }],
      }),
    );
    expect(e).toMatchObject({ action: "segment.create", segmentKey: "s" });
    e = await one(() => segments.updateSegment({ projectId: t.projectId, key: "s", expectedVersion: 1n, name: "S2", includedKeys: ["k"] }));
    expect(json(e).before).toMatchObject({ name: "S", includedKeys: [] });
    expect(json(e).after).toMatchObject({ name: "S2", includedKeys: ["k"] });
    e = await one(() => segments.deleteSegment({ projectId: t.projectId, key: "s", expectedVersion: 2n, reason: "unused" }));
    expect(e).toMatchObject({ action: "segment.delete", reason: "unused" });
    expect(json(e).after).toBeNull();

    e = await one(() => flags.archiveFlag({ projectId: t.projectId, key: "f", expectedVersion: 2n }));
    expect(json(e).after).toMatchObject({ archived: true });
    e = await one(() => flags.unarchiveFlag({ projectId: t.projectId, key: "f", expectedVersion: 3n }));
    expect(json(e).after).toMatchObject({ archived: false });
    e = await one(() =>
      flags.importFlagd({
        environmentId: t.stagingId,
        flagdJson: JSON.stringify({ flags: { f: { state: "ENABLED", variants: { on: true, off: false }, defaultVariant: "off" } } }),
        reason: "import",
      }),
    );
    expect(e).toMatchObject({ action: "flag.environment.import", environmentId: t.stagingId, flagKey: "f", reason: "import" });
    // Only the flag-set metadata changes: one entry for it.
    e = await one(() =>
      flags.importFlagd({
        environmentId: t.stagingId,
        flagdJson: JSON.stringify({
          flags: { f: { state: "ENABLED", variants: { on: true, off: false }, defaultVariant: "off" } },
          metadata: { team: "core", flagSetId: "ignored" },
        }),
        reason: "metadata",
      }),
    );
    expect(e).toMatchObject({ action: "environment.metadata.import", environmentId: t.stagingId, flagKey: "", reason: "metadata" });
    expect(json(e)).toEqual({ before: { metadata: {} }, after: { metadata: { team: "core" } } });

    // A revert is a mutation like any other: one entry, with the before and after it made.
    const renamed = (await flags.listAuditEntries({ projectId: t.projectId, flagKey: "f" })).entries.find((x) => x.action === "flag.update")!;
    e = await one(() => flags.revertAuditEntry({ projectId: t.projectId, auditEntryId: renamed.id, expectedVersion: 4n, reason: "undo rename" }));
    expect(e).toMatchObject({ action: "flag.revert", flagKey: "f", reason: `revert of audit entry ${renamed.id}: undo rename` });
    expect(json(e).before).toMatchObject({ name: "F2", version: "4" });
    expect(json(e).after).toMatchObject({ name: "F", version: "5" });
    const envChange = (await flags.listAuditEntries({ projectId: t.projectId, environmentId: t.environmentId })).entries[0];
    e = await one(() => flags.revertAuditEntry({ projectId: t.projectId, auditEntryId: envChange.id, expectedVersion: 2n }));
    expect(e).toMatchObject({ action: "flag.environment.revert", environmentId: t.environmentId, flagKey: "f" });
    expect(json(e).after).toMatchObject({ enabled: true, defaultVariant: "on", version: "3" });

    // Failed mutations and reads leave no trace.
    await none(() => flags.updateFlag({ projectId: t.projectId, key: "f", expectedVersion: 1n, name: "stale", variants }).catch(() => undefined));
    await none(() => flags.revertAuditEntry({ projectId: t.projectId, auditEntryId: envChange.id, expectedVersion: 1n }).catch(() => undefined));
    await none(async () => {
      await flags.getFlag({ projectId: t.projectId, key: "f" });
      await flags.listFlags({ projectId: t.projectId });
      await flags.exportFlagd({ environmentId: t.environmentId });
      await segments.listSegments({ projectId: t.projectId });
    });
  });

  it("is queryable per flag, per environment, per segment and per actor", async () => {
    const editor = await h.member(t, "editor");
    await h.client(FlagService, editor.token).createFlag({ projectId: t.projectId, key: "g", name: "G", type: FlagType.BOOLEAN, variants });
    const byFlag = (await flags.listAuditEntries({ projectId: t.projectId, flagKey: "g" })).entries;
    expect(byFlag.map((e) => e.action)).toEqual(["flag.create"]);
    const byActor = (await flags.listAuditEntries({ projectId: t.projectId, actor: editor.userId })).entries;
    expect(byActor.map((e) => e.flagKey)).toEqual(["g"]);
    const byEnv = (await flags.listAuditEntries({ projectId: t.projectId, environmentId: t.environmentId })).entries;
    expect(byEnv.map((e) => e.action)).toEqual(["flag.environment.revert", "flag.environment.update", "flag.environment.update"]);
    const bySegment = (await flags.listAuditEntries({ projectId: t.projectId, segmentKey: "s" })).entries;
    expect(bySegment.map((e) => e.action)).toEqual(["segment.delete", "segment.update", "segment.create"]);
    // Newest first, ids increasing with time.
    const ids = (await all()).map((e) => e.id);
    expect([...ids].sort((a, b) => (a > b ? -1 : 1))).toEqual(ids);
  });

  it("cannot be altered: no RPC rewrites it, and the database refuses updates and deletes", async () => {
    // RevertAuditEntry appends a new entry (tested above); nothing edits or removes one.
    for (const service of [FlagService, SegmentService]) {
      expect(service.methods.map((m) => m.name).filter((n) => /audit/i.test(n))).toEqual(
        service === FlagService ? ["ListAuditEntries", "RevertAuditEntry"] : [],
      );
    }
    const db = h.flags.database.db;
    await expect(sql`update audit_entries set reason = 'forged'`.execute(db)).rejects.toThrow(/append-only/);
    await expect(sql`delete from audit_entries`.execute(db)).rejects.toThrow(/append-only/);
    await expect(sql`truncate audit_entries`.execute(db)).rejects.toThrow(/append-only/);
    expect((await all()).every((e) => e.reason !== "forged")).toBe(true);
  });
});
