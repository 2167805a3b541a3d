/**
 * ListFlags for a console with 10,000 flags: keyset paging through every flag exactly once,
 * totals, per-environment summaries, and the state and archived filters, on rows written straight
 * into the flags schema (creating 10,000 flags through the API would rebuild every snapshot
 * 10,000 times) and read through the real service.
 */
import { randomUUID } from "node:crypto";
import { create, fromJson } from "@bufbuild/protobuf";
import { ValueSchema } from "@bufbuild/protobuf/wkt";
import { type Client, Code } from "@connectrpc/connect";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { FlagService, type ListFlagsRequest } from "#gen/vane/flags/v1/flag_service_pb.js";
import { FlagType, VariantSchema } from "#gen/vane/flags/v1/flags_pb.js";
import { failure } from "#test/support/harness.ts";
import { type FlagsHarness, startFlags, type Tenant } from "./harness.ts";

const COUNT = 10_000;
const key = (i: number) => `flag-${String(i).padStart(5, "0")}`;
// Production: every third flag configured, on when also even; staging: every fifth, off.
const configuredInProduction = (i: number) => i % 3 === 0;
const enabledInProduction = (i: number) => i % 3 === 0 && i % 2 === 0;
const configuredInStaging = (i: number) => i % 5 === 0;
const isString = (i: number) => i % 4 === 0;
const isArchived = (i: number) => i % 1000 === 7;

describe("ListFlags at 10,000 flags", () => {
  let h: FlagsHarness;
  let t: Tenant;
  let flags: Client<typeof FlagService>;

  beforeAll(async () => {
    h = await startFlags();
    t = await h.seedTenant();
    flags = h.client(FlagService, t.ownerToken);
    const db = h.flags.database.db;
    const ids = Array.from({ length: COUNT }, () => randomUUID());
    const variants = (i: number) =>
      JSON.stringify(
        isString(i)
          ? [
              { key: "a", value: "A" },
              { key: "b", value: "B" },
            ]
          : [
              { key: "on", value: true },
              { key: "off", value: false },
            ],
      );
    for (let from = 0; from < COUNT; from += 1000) {
      const slice = ids.slice(from, from + 1000);
      await db
        .insertInto("flags")
        .values(
          slice.map((id, j) => {
            const i = from + j;
            return {
              id,
              organization_id: t.orgId,
              project_id: t.projectId,
              key: key(i),
              name: `Flag ${i}`,
              description: "",
              tags: JSON.stringify(i % 10 === 0 ? ["tenth"] : []),
              owner: "",
              type: isString(i) ? ("string" as const) : ("boolean" as const),
              variants: variants(i),
              client_visible: false,
              archived: isArchived(i),
              version: 1,
            };
          }),
        )
        .execute();
      const envRows = slice.flatMap((id, j) => {
        const i = from + j;
        const rows = [];
        const base = { flag_id: id, organization_id: t.orgId, project_id: t.projectId, version: 1 };
        const on = isString(i) ? "a" : "on";
        if (configuredInProduction(i))
          rows.push({
            ...base,
            environment_id: t.environmentId,
            enabled: enabledInProduction(i),
            default_variant: on,
            rules: JSON.stringify(i % 9 === 0 ? [{ id: "r1", conditions: [], outcome: { variant: on } }] : []),
          });
        if (configuredInStaging(i)) rows.push({ ...base, environment_id: t.stagingId, enabled: false, default_variant: "", rules: "[]" });
        return rows;
      });
      if (envRows.length > 0) await db.insertInto("flag_environments").values(envRows).execute();
    }
  }, 120_000);
  afterAll(() => h?.close());

  /** Every page of a listing: keys in order, summaries, totals seen. */
  async function listAll(req: Omit<Partial<ListFlagsRequest>, "$typeName" | "$unknown">, pageSize = 200) {
    const keys: string[] = [];
    const totals = new Set<number>();
    const summaries = new Map<string, { environmentId: string; enabled: boolean; ruleCount: number; defaultVariant: string }[]>();
    let pageToken = "";
    let pages = 0;
    do {
      const res = await flags.listFlags({ projectId: t.projectId, pageSize, pageToken, ...req });
      pages++;
      totals.add(res.totalSize);
      for (const f of res.flags) {
        keys.push(f.key);
        summaries.set(f.key, res.environmentSummaries[f.key]?.environments ?? []);
      }
      expect(Object.keys(res.environmentSummaries).sort()).toEqual(res.flags.map((f) => f.key).sort());
      pageToken = res.nextPageToken;
    } while (pageToken);
    return { keys, totals: [...totals], summaries, pages };
  }
  const expected = (pred: (i: number) => boolean) =>
    Array.from({ length: COUNT }, (_, i) => i)
      .filter(pred)
      .map(key);

  it("pages through every flag once, in key order, with the total and each flag's environments", async () => {
    const all = await listAll({});
    expect(all.pages).toBe(Math.ceil(expected((i) => !isArchived(i)).length / 200));
    expect(all.keys).toEqual(expected((i) => !isArchived(i)));
    expect(all.totals).toEqual([COUNT - 10]);
    expect(all.summaries.get(key(0))).toMatchObject([
      { environmentId: [t.environmentId, t.stagingId].sort()[0] },
      { environmentId: [t.environmentId, t.stagingId].sort()[1] },
    ]);
    const prod = (k: string) => all.summaries.get(k)!.find((s) => s.environmentId === t.environmentId);
    expect(prod(key(0))).toMatchObject({ enabled: true, ruleCount: 1, defaultVariant: "a" });
    expect(prod(key(3))).toMatchObject({ enabled: false, ruleCount: 0, defaultVariant: "on" });
    expect(prod(key(1))).toBeUndefined();
  }, 120_000);

  it("filters by state per environment, type, tag and archived, with the totals of each filter", async () => {
    const on = await listAll({ enabledInEnvironment: t.environmentId });
    expect(on.keys).toEqual(expected((i) => enabledInProduction(i) && !isArchived(i)));
    expect(on.totals).toEqual([on.keys.length]);
    const off = await listAll({ disabledInEnvironment: t.environmentId });
    expect(off.keys).toEqual(expected((i) => !enabledInProduction(i) && !isArchived(i)));
    expect(off.keys.length + on.keys.length).toBe(COUNT - 10);
    const offStagingStrings = await listAll({ disabledInEnvironment: t.stagingId, type: FlagType.STRING, tags: ["tenth"] }, 50);
    expect(offStagingStrings.keys).toEqual(expected((i) => isString(i) && i % 10 === 0 && !isArchived(i)));
    const archived = await listAll({ onlyArchived: true });
    expect(archived.keys).toEqual(expected(isArchived));
    expect(archived.totals).toEqual([10]);
  }, 120_000);

  it("refuses a state filter naming an environment of another project or organization", async () => {
    const other = await h.seedTenant();
    expect((await failure(flags.listFlags({ projectId: t.projectId, enabledInEnvironment: other.environmentId }))).code).toBe(Code.NotFound);
    expect((await failure(flags.listFlags({ projectId: t.projectId, disabledInEnvironment: "not-a-uuid" }))).code).toBe(Code.InvalidArgument);
    // An environment of another project of the same organization.
    const project = await h.seedTenant();
    const db = h.identity.database.db;
    await db.updateTable("projects").set({ organization_id: t.orgId, key: "other" }).where("id", "=", project.projectId).execute();
    await db.updateTable("environments").set({ organization_id: t.orgId }).where("project_id", "=", project.projectId).execute();
    const err = await failure(flags.listFlags({ projectId: t.projectId, enabledInEnvironment: project.environmentId }));
    expect(err.code).toBe(Code.InvalidArgument);
    expect(err.rawMessage).toBe(`enabled_in_environment: environment ${project.environmentId} is not in project ${t.projectId}`);
  });

  it("shows a flag created through the API with its environments", async () => {
    const variants = [create(VariantSchema, { key: "on", value: fromJson(ValueSchema, true) })];
    await flags.createFlag({ projectId: t.projectId, key: "zz-api", name: "API", type: FlagType.BOOLEAN, variants });
    await flags.updateFlagEnvironment({ environmentId: t.stagingId, flagKey: "zz-api", enabled: true, defaultVariant: "on" });
    const res = await flags.listFlags({ projectId: t.projectId, query: "zz-api", enabledInEnvironment: t.stagingId });
    expect(res.flags.map((f) => f.key)).toEqual(["zz-api"]);
    expect(res.totalSize).toBe(1);
    expect(res.environmentSummaries["zz-api"].environments).toMatchObject([
      { environmentId: t.stagingId, enabled: true, defaultVariant: "on", ruleCount: 0, version: 1n },
    ]);
  });
});
