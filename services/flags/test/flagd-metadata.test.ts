/** flagd metadata through the service: stored by ImportFlagd, served in snapshots, exported back. */
import { toJson } from "@bufbuild/protobuf";
import { ValueSchema } from "@bufbuild/protobuf/wkt";
import type { Client } from "@connectrpc/connect";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { FlagService } from "#gen/vane/flags/v1/flag_service_pb.js";
import { compileFlagSet, parseFlagdJson } from "#engine";
import { snapshotToFlagSet } from "../environment-config.ts";
import { type FlagsHarness, startFlags, type Tenant } from "./harness.ts";
import { decodeStoredSnapshot } from "#lib/bus/snapshots.ts";

const file = {
  flags: {
    banner: {
      state: "ENABLED",
      variants: { red: "R", blue: "B" },
      defaultVariant: "red",
      metadata: { owner: "web", ticket: 42, temporary: true, version: "flag-v2", experimentId: "not-from-a-file" },
    },
    plain: { state: "ENABLED", variants: { on: true, off: false }, defaultVariant: "on" },
  },
  metadata: { flagSetId: "from-the-file", version: "99", team: "platform", tier: 2 },
};

describe("flagd metadata", () => {
  let h: FlagsHarness;
  let t: Tenant;
  let flags: Client<typeof FlagService>;
  beforeAll(async () => {
    h = await startFlags();
    t = await h.seedTenant();
    flags = h.client(FlagService, t.ownerToken);
  });
  afterAll(() => h?.close());

  it("stores flag and flag-set metadata, serves it in the snapshot, and exports it with Vane's keys overlaid", async () => {
    const { configVersion } = await flags.importFlagd({ environmentId: t.environmentId, flagdJson: JSON.stringify(file) });
    const got = await flags.getFlag({ projectId: t.projectId, key: "banner" });
    const stored = Object.fromEntries(Object.entries(got.environments[0].metadata).map(([k, v]) => [k, toJson(ValueSchema, v)]));
    expect(stored).toEqual({ owner: "web", ticket: 42, temporary: true, version: "flag-v2" });

    const exported = JSON.parse((await flags.exportFlagd({ environmentId: t.environmentId })).flagdJson);
    expect(exported.flags.banner.metadata).toEqual({ owner: "web", ticket: 42, temporary: true, version: "flag-v2" });
    expect(exported.flags.plain.metadata).toBeUndefined();
    expect(exported.metadata).toEqual({ flagSetId: t.environmentId, version: String(configVersion), team: "platform", tier: 2 });
    const resolved = compileFlagSet(parseFlagdJson(JSON.stringify(exported))).evaluate("banner", {});
    expect(resolved.metadata).toEqual({ flagSetId: t.environmentId, version: "flag-v2", team: "platform", tier: 2, owner: "web", ticket: 42, temporary: true });

    // Evaluators see the same metadata.
    let snap;
    for (let i = 0; i < 100; i++) {
      const e = await h.flags.snapshots.get(t.environmentId);
      snap = e ? await decodeStoredSnapshot(h.flags.snapshots, e.value) : undefined;
      if (snap && snap.version >= configVersion) break;
      await new Promise((r) => setTimeout(r, 50));
    }
    expect(snap?.version).toBe(configVersion);
    expect(compileFlagSet(snapshotToFlagSet(snap!)).evaluate("plain", {}).metadata).toEqual({
      flagSetId: t.environmentId,
      version: String(configVersion),
      team: "platform",
      tier: 2,
    });

    const audit = await flags.listAuditEntries({ projectId: t.projectId, environmentId: t.environmentId });
    const setEntry = audit.entries.find((e) => e.action === "environment.metadata.import");
    expect(setEntry && toJson(ValueSchema, setEntry.after!)).toEqual({ metadata: { team: "platform", tier: 2 } });
  });

  it("keeps metadata through UpdateFlagEnvironment; a re-import replaces flag metadata, and set metadata only when the file has some", async () => {
    const [env] = (await flags.getFlag({ projectId: t.projectId, key: "banner" })).environments;
    const updated = await flags.updateFlagEnvironment({
      environmentId: t.environmentId,
      flagKey: "banner",
      expectedVersion: env.version,
      enabled: true,
      defaultVariant: "blue",
    });
    expect(Object.keys(updated.environment!.metadata).sort()).toEqual(["owner", "temporary", "ticket", "version"]);

    const again = await flags.importFlagd({
      environmentId: t.environmentId,
      flagdJson: JSON.stringify({ flags: { banner: { ...file.flags.banner, defaultVariant: "blue", metadata: { owner: "growth" } } } }),
    });
    expect(again.updatedFlagKeys).toEqual(["banner"]);
    const exported = JSON.parse((await flags.exportFlagd({ environmentId: t.environmentId })).flagdJson);
    expect(exported.flags.banner.metadata).toEqual({ owner: "growth" });
    expect(exported.metadata).toMatchObject({ team: "platform", tier: 2 });

    // Only metadata differs: still a change, with its own config version.
    const metaOnly = await flags.importFlagd({ environmentId: t.environmentId, flagdJson: JSON.stringify({ flags: {}, metadata: { team: "core" } }) });
    expect(metaOnly.configVersion).toBe(again.configVersion + 1n);
    expect(JSON.parse((await flags.exportFlagd({ environmentId: t.environmentId })).flagdJson).metadata).toEqual({
      flagSetId: t.environmentId,
      version: String(metaOnly.configVersion),
      team: "core",
    });
  });
});
