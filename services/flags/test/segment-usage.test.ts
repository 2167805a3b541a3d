/**
 * Where a segment is used: GetSegment and ListSegments name the flags (and environments) whose
 * rules use each segment, and DeleteSegment refuses a used segment naming them.
 */
import { create, fromJson } from "@bufbuild/protobuf";
import { ValueSchema } from "@bufbuild/protobuf/wkt";
import { type Client, Code } from "@connectrpc/connect";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { FlagService } from "#gen/vane/flags/v1/flag_service_pb.js";
import { FlagType, RuleSchema, VariantSchema } from "#gen/vane/flags/v1/flags_pb.js";
import { SegmentService } from "#gen/vane/flags/v1/segment_service_pb.js";
import { failure } from "#test/support/harness.ts";
import { type FlagsHarness, startFlags, type Tenant } from "./harness.ts";

const variants = [
  create(VariantSchema, { key: "on", value: fromJson(ValueSchema, true) }),
  create(VariantSchema, { key: "off", value: fromJson(ValueSchema, false) }),
];
const usingSegment = (segmentKey: string, negate = false) => [
  create(RuleSchema, { conditions: [{ kind: { case: "segment", value: { segmentKey, negate } } }], outcome: { kind: { case: "variant", value: "on" } } }),
];

describe("segment usage", () => {
  let h: FlagsHarness;
  let t: Tenant;
  let flags: Client<typeof FlagService>;
  let segments: Client<typeof SegmentService>;
  beforeAll(async () => {
    h = await startFlags();
    t = await h.seedTenant();
    flags = h.client(FlagService, t.ownerToken);
    segments = h.client(SegmentService, t.ownerToken);
    for (const key of ["beta", "staff", "unused"]) await segments.createSegment({ projectId: t.projectId, key, name: key, includedKeys: ["u1"] });
    for (const key of ["a-flag", "b-flag", "c-archived"]) await flags.createFlag({ projectId: t.projectId, key, name: key, type: FlagType.BOOLEAN, variants });
    await flags.updateFlagEnvironment({ environmentId: t.environmentId, flagKey: "a-flag", enabled: true, rules: usingSegment("beta") });
    await flags.updateFlagEnvironment({
      environmentId: t.stagingId,
      flagKey: "a-flag",
      enabled: true,
      rules: [...usingSegment("staff"), ...usingSegment("beta", true)],
    });
    await flags.updateFlagEnvironment({ environmentId: t.stagingId, flagKey: "b-flag", enabled: true, rules: usingSegment("staff") });
    await flags.updateFlagEnvironment({ environmentId: t.environmentId, flagKey: "c-archived", enabled: true, rules: usingSegment("beta") });
    await flags.archiveFlag({ projectId: t.projectId, key: "c-archived", expectedVersion: 1n });
  });
  afterAll(() => h?.close());

  const envs = (...ids: string[]) => ids.sort();

  it("GetSegment names the flags using the segment and where", async () => {
    const beta = await segments.getSegment({ projectId: t.projectId, key: "beta" });
    expect(beta.usedBy.map((r) => ({ flagKey: r.flagKey, environmentIds: r.environmentIds, flagArchived: r.flagArchived }))).toEqual([
      { flagKey: "a-flag", environmentIds: envs(t.environmentId, t.stagingId), flagArchived: false },
      { flagKey: "c-archived", environmentIds: [t.environmentId], flagArchived: true },
    ]);
    expect((await segments.getSegment({ projectId: t.projectId, key: "unused" })).usedBy).toEqual([]);
  });

  it("ListSegments gives the usage of every used segment", async () => {
    const res = await segments.listSegments({ projectId: t.projectId });
    expect(res.segments.map((s) => s.key)).toEqual(["beta", "staff", "unused"]);
    expect(Object.keys(res.usedBy).sort()).toEqual(["beta", "staff"]);
    expect(res.usedBy.staff.references.map((r) => [r.flagKey, r.environmentIds])).toEqual([
      ["a-flag", [t.stagingId]],
      ["b-flag", [t.stagingId]],
    ]);
  });

  it("DeleteSegment refuses a used segment, naming the flags, and deletes it once unused", async () => {
    const err = await failure(segments.deleteSegment({ projectId: t.projectId, key: "staff", expectedVersion: 1n }));
    expect(err.code).toBe(Code.FailedPrecondition);
    expect(err.rawMessage).toBe('segment "staff" is used by "a-flag", "b-flag"; remove it from their targeting first');
    await flags.updateFlagEnvironment({ environmentId: t.stagingId, flagKey: "b-flag", expectedVersion: 1n, enabled: true, rules: [] });
    await flags.updateFlagEnvironment({ environmentId: t.stagingId, flagKey: "a-flag", expectedVersion: 1n, enabled: true, rules: usingSegment("beta", true) });
    expect((await segments.getSegment({ projectId: t.projectId, key: "staff" })).usedBy).toEqual([]);
    await segments.deleteSegment({ projectId: t.projectId, key: "staff", expectedVersion: 1n });
    expect((await failure(segments.getSegment({ projectId: t.projectId, key: "staff" }))).code).toBe(Code.NotFound);
  });
});
