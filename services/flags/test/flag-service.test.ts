import { create, fromJson, type JsonValue } from "@bufbuild/protobuf";
import { ValueSchema } from "@bufbuild/protobuf/wkt";
import { type Client, Code, ConnectError } from "@connectrpc/connect";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { FlagService } from "#gen/vane/flags/v1/flag_service_pb.js";
import { FlagType, Operator, type Rule, RuleSchema, VariantSchema } from "#gen/vane/flags/v1/flags_pb.js";
import { SegmentService } from "#gen/vane/flags/v1/segment_service_pb.js";
import { compileFlagSet } from "#engine";
import { snapshotToFlagSet } from "../environment-config.ts";
import { type FlagsHarness, startFlags, type Tenant } from "./harness.ts";
import { decodeStoredSnapshot } from "#lib/bus/snapshots.ts";

const v = (x: JsonValue) => fromJson(ValueSchema, x);
const boolVariants = [create(VariantSchema, { key: "on", value: v(true) }), create(VariantSchema, { key: "off", value: v(false) })];
const colorVariants = ["red", "green", "blue"].map((c) => create(VariantSchema, { key: c, value: v(c.toUpperCase()) }));

async function code(p: Promise<unknown>): Promise<string> {
  try {
    await p;
    return "OK";
  } catch (err) {
    return Code[ConnectError.from(err).code];
  }
}
async function message(p: Promise<unknown>): Promise<string> {
  try {
    await p;
    return "";
  } catch (err) {
    return ConnectError.from(err).rawMessage;
  }
}

const rule = (init: Parameters<typeof create<typeof RuleSchema>>[1]): Rule => create(RuleSchema, init);
const attr = (attribute: string, operator: Operator, values: JsonValue[]) => ({
  kind: { case: "attribute" as const, value: { attribute, operator, values: values.map(v) } },
});

describe("FlagService", () => {
  let h: FlagsHarness;
  let t: Tenant;
  let flags: Client<typeof FlagService>;
  let segments: Client<typeof SegmentService>;
  beforeAll(async () => {
    h = await startFlags();
    t = await h.seedTenant();
    flags = h.client(FlagService, t.ownerToken);
    segments = h.client(SegmentService, t.ownerToken);
  });
  afterAll(() => h?.close());

  it("creates, reads, lists, updates, archives and unarchives flags", async () => {
    const { flag } = await flags.createFlag({
      projectId: t.projectId,
      key: "new-checkout",
      name: "New checkout",
      tags: ["checkout", "web"],
      owner: "team-pay",
      type: FlagType.BOOLEAN,
      variants: boolVariants,
      reason: "launch",
    });
    expect(flag?.version).toBe(1n);
    expect(flag?.key).toBe("new-checkout");
    await flags.createFlag({ projectId: t.projectId, key: "banner-color", name: "Banner", tags: ["web"], type: FlagType.STRING, variants: colorVariants });
    await flags.createFlag({
      projectId: t.projectId,
      key: "limits",
      name: "Rate limits",
      type: FlagType.OBJECT,
      variants: [create(VariantSchema, { key: "low", value: v({ rps: 10 }) })],
    });
    expect(await code(flags.createFlag({ projectId: t.projectId, key: "new-checkout", name: "dup", type: FlagType.BOOLEAN, variants: boolVariants }))).toBe(
      "AlreadyExists",
    );

    const got = await flags.getFlag({ projectId: t.projectId, key: "new-checkout" });
    expect(got.flag?.tags).toEqual(["checkout", "web"]);
    expect(got.environments).toEqual([]);

    expect((await flags.listFlags({ projectId: t.projectId })).flags.map((f) => f.key)).toEqual(["banner-color", "limits", "new-checkout"]);
    expect((await flags.listFlags({ projectId: t.projectId, query: "CHECK" })).flags.map((f) => f.key)).toEqual(["new-checkout"]);
    expect((await flags.listFlags({ projectId: t.projectId, query: "rate" })).flags.map((f) => f.key)).toEqual(["limits"]);
    // Tags too, case-insensitively, by substring; LIKE wildcards are literal.
    expect((await flags.listFlags({ projectId: t.projectId, query: "WEB" })).flags.map((f) => f.key)).toEqual(["banner-color", "new-checkout"]);
    expect((await flags.listFlags({ projectId: t.projectId, query: "check" })).flags.map((f) => f.key)).toEqual(["new-checkout"]);
    expect((await flags.listFlags({ projectId: t.projectId, query: "%" })).flags).toEqual([]);
    expect((await flags.listFlags({ projectId: t.projectId, query: "we", tags: ["checkout"] })).flags.map((f) => f.key)).toEqual(["new-checkout"]);
    expect((await flags.listFlags({ projectId: t.projectId, tags: ["web"] })).flags.map((f) => f.key)).toEqual(["banner-color", "new-checkout"]);
    expect((await flags.listFlags({ projectId: t.projectId, type: FlagType.OBJECT })).flags.map((f) => f.key)).toEqual(["limits"]);
    const page1 = await flags.listFlags({ projectId: t.projectId, pageSize: 2 });
    expect(page1.flags).toHaveLength(2);
    const page2 = await flags.listFlags({ projectId: t.projectId, pageSize: 2, pageToken: page1.nextPageToken });
    expect(page2.flags.map((f) => f.key)).toEqual(["new-checkout"]);
    expect(page2.nextPageToken).toBe("");
    expect(await code(flags.listFlags({ projectId: t.projectId, pageToken: "garbage" }))).toBe("InvalidArgument");

    const upd = await flags.updateFlag({
      projectId: t.projectId,
      key: "new-checkout",
      expectedVersion: 1n,
      name: "New checkout v2",
      tags: ["checkout"],
      variants: boolVariants,
      clientVisible: true,
      reason: "rename",
    });
    expect(upd.flag?.version).toBe(2n);
    expect(upd.flag?.clientVisible).toBe(true);
    expect(await code(flags.updateFlag({ projectId: t.projectId, key: "new-checkout", expectedVersion: 1n, name: "stale", variants: boolVariants }))).toBe(
      "Aborted",
    );
    expect(
      await message(flags.updateFlag({ projectId: t.projectId, key: "new-checkout", expectedVersion: 1n, name: "stale", variants: boolVariants })),
    ).toContain("version 2");

    const arch = await flags.archiveFlag({ projectId: t.projectId, key: "limits", expectedVersion: 1n, reason: "done" });
    expect(arch.flag?.archived).toBe(true);
    expect((await flags.listFlags({ projectId: t.projectId })).flags.map((f) => f.key)).not.toContain("limits");
    expect((await flags.listFlags({ projectId: t.projectId, includeArchived: true })).flags.map((f) => f.key)).toContain("limits");
    expect(await code(flags.updateFlagEnvironment({ environmentId: t.environmentId, flagKey: "limits", enabled: true }))).toBe("FailedPrecondition");
    const un = await flags.unarchiveFlag({ projectId: t.projectId, key: "limits", expectedVersion: 2n });
    expect(un.flag?.archived).toBe(false);
    expect(un.flag?.version).toBe(3n);
    expect(await code(flags.getFlag({ projectId: t.projectId, key: "nope" }))).toBe("NotFound");
  });

  it("rejects invalid definitions and keys", async () => {
    expect(await code(flags.createFlag({ projectId: t.projectId, key: "bad key!", name: "x", type: FlagType.BOOLEAN, variants: boolVariants }))).toBe(
      "InvalidArgument",
    );
    expect(await code(flags.createFlag({ projectId: t.projectId, key: "-lead", name: "x", type: FlagType.BOOLEAN, variants: boolVariants }))).toBe(
      "InvalidArgument",
    );
    expect(await message(flags.createFlag({ projectId: t.projectId, key: "typed", name: "x", type: FlagType.BOOLEAN, variants: colorVariants }))).toMatch(
      /^variants\[0\]\.value: /,
    );
    expect(await code(flags.createFlag({ projectId: t.projectId, key: "novars", name: "x", type: FlagType.BOOLEAN, variants: [] }))).toBe("InvalidArgument");
    const dup = [boolVariants[0], boolVariants[0]];
    expect(await message(flags.createFlag({ projectId: t.projectId, key: "dupvars", name: "x", type: FlagType.BOOLEAN, variants: dup }))).toMatch(
      /^variants\[1\]\.key: duplicate/,
    );
  });

  it("configures an environment: state, default, ordered rules; validates with exact paths", async () => {
    await segments.createSegment({
      projectId: t.projectId,
      key: "beta.testers",
      name: "Beta",
      includedKeys: ["u-1", "u-2"],
      conditions: [attr("email", Operator.ENDS_WITH, ["@beta.test"])],
    });
    const rules = [
      rule({ description: "staff", conditions: [attr("email", Operator.ENDS_WITH, ["@acme.com"])], outcome: { kind: { case: "variant", value: "green" } } }),
      rule({ conditions: [{ kind: { case: "segment", value: { segmentKey: "beta.testers" } } }], outcome: { kind: { case: "variant", value: "blue" } } }),
      rule({
        conditions: [attr("app", Operator.SEMVER_GREATER_THAN_OR_EQUAL, ["2.0.0"]), attr("country", Operator.IN, ["de", "fr"])],
        outcome: {
          kind: {
            case: "rollout",
            value: {
              variants: [
                { variant: "red", weight: 1 },
                { variant: "blue", weight: 3 },
              ],
            },
          },
        },
      }),
    ];
    const res = await flags.updateFlagEnvironment({
      environmentId: t.environmentId,
      flagKey: "banner-color",
      expectedVersion: 0n,
      enabled: true,
      defaultVariant: "red",
      rules,
      reason: "targeting",
    });
    expect(res.environment?.version).toBe(1n);
    expect(res.environment?.rules.every((r) => r.id !== "")).toBe(true);
    expect(res.configVersion).toBeGreaterThan(0n);
    expect(await code(flags.updateFlagEnvironment({ environmentId: t.environmentId, flagKey: "banner-color", expectedVersion: 0n, enabled: false }))).toBe(
      "Aborted",
    );

    const bad = (r: Rule[], dv = "red") =>
      message(
        flags.updateFlagEnvironment({
          environmentId: t.environmentId,
          flagKey: "banner-color",
          expectedVersion: 1n,
          enabled: true,
          defaultVariant: dv,
          rules: r,
        }),
      );
    const ok = rules[0];
    expect(
      await bad([
        ok,
        ok,
        rule({
          outcome: {
            kind: {
              case: "rollout",
              value: {
                variants: [
                  { variant: "red", weight: 1 },
                  { variant: "bleu", weight: 1 },
                ],
              },
            },
          },
        }),
      ]),
    ).toMatch(/^rules\[2\]\.outcome\.rollout\.variants\[1\]\.variant: unknown variant "bleu"/);
    expect(await bad([rule({ outcome: { kind: { case: "variant", value: "purple" } } })])).toMatch(/^rules\[0\]\.outcome\.variant: unknown variant "purple"/);
    expect(await bad([ok], "purple")).toMatch(/^default_variant: unknown variant/);
    expect(await bad([rule({ outcome: { kind: { case: "rollout", value: { variants: [{ variant: "red", weight: 0 }] } } } })])).toMatch(
      /^rules\[0\]\.outcome\.rollout\.variants: the weights sum to 0/,
    );
    expect(
      await bad([rule({ conditions: [{ kind: { case: "segment", value: { segmentKey: "nobody" } } }], outcome: { kind: { case: "variant", value: "red" } } })]),
    ).toMatch(/^rules\[0\]\.conditions\[0\]\.segment\.segment_key: unknown segment "nobody"/);
    expect(await bad([rule({ conditions: [attr("age", Operator.GREATER_THAN, ["ten"])], outcome: { kind: { case: "variant", value: "red" } } })])).toMatch(
      /^rules\[0\]\.conditions\[0\]\.attribute\.values\[0\]: GREATER_THAN needs a number/,
    );
    expect(await bad([rule({ conditions: [attr("v", Operator.SEMVER_CARET, ["one"])], outcome: { kind: { case: "variant", value: "red" } } })])).toMatch(
      /semantic version/,
    );
    expect(await bad([rule({ conditions: [attr("d", Operator.BEFORE, ["yesterday"])], outcome: { kind: { case: "variant", value: "red" } } })])).toMatch(
      /RFC 3339/,
    );
    expect(await bad([rule({ conditions: [attr("d", Operator.EQUALS, ["a", "b"])], outcome: { kind: { case: "variant", value: "red" } } })])).toMatch(
      /exactly one value/,
    );
    expect(await bad([rule({ conditions: [attr("email", Operator.MATCHES, ["(a)\\1"])], outcome: { kind: { case: "variant", value: "red" } } })])).toMatch(
      /^rules\[0\]\.conditions\[0\]\.attribute\.values\[0\]: backreferences \(\\1\) are not supported/,
    );
    expect(
      await bad([
        rule({ conditions: [{ kind: { case: "jsonLogic", value: v({ regex_match: [1] }) } }], outcome: { kind: { case: "variant", value: "red" } } }),
      ]),
    ).toMatch(/^rules\[0\]\.conditions\[0\]\.json_logic\.regex_match: unknown operator/);
    expect(await bad([rule({ outcome: { kind: { case: "jsonLogic", value: v({ if: [{ var: "x" }, "red", "pink"] }) } } })])).toMatch(
      /^rules\[0\]\.outcome\.json_logic\.if\[2\]: can return "pink"/,
    );

    // Variants in use cannot be removed.
    expect(
      await code(flags.updateFlag({ projectId: t.projectId, key: "banner-color", expectedVersion: 1n, name: "Banner", variants: colorVariants.slice(0, 2) })),
    ).toBe("FailedPrecondition");
    // Segments in use cannot be deleted.
    expect(await code(segments.deleteSegment({ projectId: t.projectId, key: "beta.testers", expectedVersion: 1n }))).toBe("FailedPrecondition");
  });

  it("writes the environment's complete snapshot, evaluating as configured", async () => {
    const entry = await h.flags.snapshots.get(t.environmentId);
    // The relay may still be catching up: wait for the latest version.
    const { configVersion } = await flags.exportFlagd({ environmentId: t.environmentId });
    let snap = entry ? await decodeStoredSnapshot(h.flags.snapshots, entry.value) : undefined;
    for (let i = 0; i < 100 && (!snap || snap.version < configVersion); i++) {
      await new Promise((r) => setTimeout(r, 50));
      const e = await h.flags.snapshots.get(t.environmentId);
      snap = e ? await decodeStoredSnapshot(h.flags.snapshots, e.value) : undefined;
    }
    expect(snap?.version).toBe(configVersion);
    expect(snap?.organizationId).toBe(t.orgId);
    expect(snap?.flags.map((f) => f.key).sort()).toEqual(["banner-color", "limits", "new-checkout"]);
    expect(Object.keys(snap!.evaluators)).toEqual(["segment:beta~testers"]);
    expect(snap?.flags.find((f) => f.key === "new-checkout")?.clientVisible).toBe(true);
    const set = compileFlagSet(snapshotToFlagSet(snap!));
    expect(set.evaluate("banner-color", { email: "x@acme.com" }).variant).toBe("green");
    expect(set.evaluate("banner-color", { targetingKey: "u-2" }).variant).toBe("blue");
    expect(set.evaluate("banner-color", { email: "a@beta.test" }).variant).toBe("blue");
    expect(set.evaluate("banner-color", { app: "1.0.0", country: "de", targetingKey: "k" })).toMatchObject({ variant: "red", reason: "DEFAULT" });
    const split = new Map<string, number>();
    for (let i = 0; i < 4000; i++) {
      const r = set.evaluate("banner-color", { app: "v2.1.0", country: "fr", targetingKey: `user-${i}` });
      split.set(r.variant!, (split.get(r.variant!) ?? 0) + 1);
    }
    expect(split.get("blue")! / 4000).toBeGreaterThan(0.7);
    expect(split.get("red")! / 4000).toBeGreaterThan(0.2);
    // Without a targeting key the rollout does not match: the default is served.
    expect(set.evaluate("banner-color", { app: "2.1.0", country: "fr" })).toMatchObject({ variant: "red", reason: "DEFAULT" });
    expect(set.evaluate("new-checkout", {})).toMatchObject({ reason: "DISABLED" });
  });

  it("lets exactly one of many concurrent writers win; the others get ABORTED", async () => {
    const { flag } = await flags.createFlag({ projectId: t.projectId, key: "race", name: "Race", type: FlagType.BOOLEAN, variants: boolVariants });
    const writers = Array.from({ length: 8 }, (_, i) =>
      code(flags.updateFlag({ projectId: t.projectId, key: "race", expectedVersion: flag!.version, name: `writer ${i}`, variants: boolVariants })),
    );
    const envWriters = Array.from({ length: 8 }, (_, i) =>
      code(flags.updateFlagEnvironment({ environmentId: t.stagingId, flagKey: "race", expectedVersion: 0n, enabled: i % 2 === 0, defaultVariant: "on" })),
    );
    const results = await Promise.all(writers);
    expect(results.filter((r) => r === "OK")).toHaveLength(1);
    expect(results.filter((r) => r === "Aborted")).toHaveLength(7);
    const envResults = await Promise.all(envWriters);
    expect(envResults.filter((r) => r === "OK")).toHaveLength(1);
    expect(envResults.filter((r) => r === "Aborted")).toHaveLength(7);
    expect((await flags.getFlag({ projectId: t.projectId, key: "race" })).flag?.version).toBe(2n);
  });

  it("enforces roles: viewers read, editors write, server and client keys are refused", async () => {
    const viewer = h.client(FlagService, (await h.member(t, "viewer")).token);
    const editor = h.client(FlagService, (await h.member(t, "editor")).token);
    expect(await code(viewer.getFlag({ projectId: t.projectId, key: "race" }))).toBe("OK");
    expect(await code(viewer.listAuditEntries({ projectId: t.projectId }))).toBe("OK");
    expect(await code(viewer.createFlag({ projectId: t.projectId, key: "v", name: "v", type: FlagType.BOOLEAN, variants: boolVariants }))).toBe(
      "PermissionDenied",
    );
    expect(await code(editor.createFlag({ projectId: t.projectId, key: "by-editor", name: "e", type: FlagType.BOOLEAN, variants: boolVariants }))).toBe("OK");
    for (const kind of ["server", "client"]) {
      const token = await h.sign({ sub: "key", org: t.orgId, prj: t.projectId, env: t.environmentId, role: "viewer", kind });
      expect(await code(h.client(FlagService, token).getFlag({ projectId: t.projectId, key: "race" }))).toBe("PermissionDenied");
    }
  });
});
