/**
 * ImportFlagd's guards: keys the contract forbids are refused before anything is written, and
 * expected_config_version makes an import optimistic like every other write.
 */
import { type Client, Code, ConnectError } from "@connectrpc/connect";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { VersionConflictSchema } from "#gen/vane/flags/v1/errors_pb.js";
import { FlagService } from "#gen/vane/flags/v1/flag_service_pb.js";
import { failure } from "#test/support/harness.ts";
import { type FlagsHarness, startFlags, type Tenant } from "./harness.ts";

const file = (flags: Record<string, unknown>) => JSON.stringify({ flags });
const boolFlag = (defaultVariant = "on") => ({ state: "ENABLED", variants: { on: true, off: false }, defaultVariant });

describe("ImportFlagd guards", () => {
  let h: FlagsHarness;
  let t: Tenant;
  let flags: Client<typeof FlagService>;
  beforeAll(async () => {
    h = await startFlags();
    t = await h.seedTenant();
    flags = h.client(FlagService, t.ownerToken);
  });
  afterAll(() => h?.close());

  const nothingWritten = async () => {
    expect((await flags.listFlags({ projectId: t.projectId, includeArchived: true })).flags).toEqual([]);
    expect((await flags.listAuditEntries({ projectId: t.projectId })).entries).toEqual([]);
    expect((await flags.exportFlagd({ environmentId: t.environmentId })).configVersion).toBe(0n);
  };

  it("refuses flag and variant keys the contract forbids, naming the path, and writes nothing", async () => {
    const cases: [string, string][] = [
      [file({ ok: boolFlag(), "feature/new ui": boolFlag() }), 'flags["feature/new ui"]'],
      [file({ color: { state: "ENABLED", variants: { red: "R", "dark red": "D" }, defaultVariant: "red" } }), 'flags.color.variants["dark red"]'],
      [file({ "-lead": boolFlag() }), "flags.-lead"],
      [file({ ["x".repeat(129)]: boolFlag() }), `flags.${"x".repeat(129)}`],
      [file({ long: { state: "ENABLED", variants: { ["v".repeat(65)]: 1 } } }), `flags.long.variants.${"v".repeat(65)}`],
      [
        JSON.stringify({
          flags: [
            { key: "fine", ...boolFlag() },
            { key: "bad key", ...boolFlag() },
          ],
        }),
        "flags[1].key",
      ],
    ];
    for (const [flagdJson, path] of cases) {
      const err = await failure(flags.importFlagd({ environmentId: t.environmentId, flagdJson }));
      expect(err.code, path).toBe(Code.InvalidArgument);
      expect(err.rawMessage.startsWith(`flagd_json: ${path}: `), err.rawMessage).toBe(true);
    }
    await nothingWritten();
    // The longest allowed keys import fine.
    const res = await flags.importFlagd({
      environmentId: t.environmentId,
      flagdJson: file({ ["k".repeat(128)]: { state: "ENABLED", variants: { ["v".repeat(64)]: 1 } } }),
    });
    expect(res.createdFlagKeys).toEqual(["k".repeat(128)]);
  });

  it("aborts an import made against a stale config version, with the current version", async () => {
    const { configVersion: v0 } = await flags.exportFlagd({ environmentId: t.environmentId });
    const first = await flags.importFlagd({ environmentId: t.environmentId, flagdJson: file({ f: boolFlag() }), expectedConfigVersion: v0 });
    expect(first.configVersion).toBe(v0 + 1n);

    // A concurrent editor changes the environment after the file was exported.
    const exported = await flags.exportFlagd({ environmentId: t.environmentId });
    const [current] = (await flags.getFlag({ projectId: t.projectId, key: "f" })).environments;
    await flags.updateFlagEnvironment({
      environmentId: t.environmentId,
      flagKey: "f",
      expectedVersion: current.version,
      enabled: false,
      defaultVariant: "off",
      reason: "editor",
    });
    const stale = await failure(
      flags.importFlagd({ environmentId: t.environmentId, flagdJson: file({ f: boolFlag("on") }), expectedConfigVersion: exported.configVersion }),
    );
    expect(stale.code).toBe(Code.Aborted);
    expect(stale.rawMessage).toContain(`version ${exported.configVersion + 1n}`);
    expect(stale.findDetails(VersionConflictSchema)).toEqual([
      expect.objectContaining({ expectedVersion: exported.configVersion, currentVersion: exported.configVersion + 1n }),
    ]);
    // The editor's change stands.
    expect((await flags.getFlag({ projectId: t.projectId, key: "f" })).environments[0]).toMatchObject({ enabled: false, defaultVariant: "off" });

    // Without a version the import applies over whatever is there.
    const blind = await flags.importFlagd({ environmentId: t.environmentId, flagdJson: file({ f: boolFlag("on") }) });
    expect(blind.updatedFlagKeys).toEqual(["f"]);
  });

  it("lets exactly one of concurrent imports against the same version win", async () => {
    const { configVersion } = await flags.exportFlagd({ environmentId: t.stagingId });
    const results = await Promise.all(
      Array.from({ length: 6 }, (_, i) =>
        flags.importFlagd({ environmentId: t.stagingId, flagdJson: file({ [`c${i}`]: boolFlag() }), expectedConfigVersion: configVersion }).then(
          () => "OK",
          (err) => Code[ConnectError.from(err).code],
        ),
      ),
    );
    expect(results.filter((r) => r === "OK")).toHaveLength(1);
    expect(results.filter((r) => r === "Aborted")).toHaveLength(5);
  });
});
