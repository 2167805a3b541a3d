/**
 * `npm start -- --flagd-file PATH`: a flagd user switches with one command. The real entry point
 * serves the file on the flagd port as the default environment, and the unmodified OpenFeature
 * flagd provider sees an edit of the file as a configuration change.
 */
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { FlagdProvider } from "@openfeature/flagd-provider";
import { OpenFeature, ProviderEvents } from "@openfeature/server-sdk";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startVane, type VaneProcess } from "./vane-process.ts";

const flags = (color: string) =>
  JSON.stringify({
    $schema: "https://flagd.dev/schema/v0/flags.json",
    flags: {
      "header-color": {
        state: "ENABLED",
        variants: { red: "#f00", blue: "#00f" },
        defaultVariant: color,
        targeting: { if: [{ ends_with: [{ var: "email" }, "@example.com"] }, "blue", null] },
      },
    },
  });

let dir: string;
let file: string;
let vane: VaneProcess;

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), "vane-start-flagd-"));
  file = join(dir, "flags.json");
  await writeFile(file, flags("red"));
  vane = startVane(["--flagd-file", file]);
});
afterAll(async () => {
  await OpenFeature.close();
  await vane?.cleanup();
  await rm(dir, { recursive: true, force: true });
});

describe("npm start -- --flagd-file", () => {
  it("serves the file to an unmodified flagd provider and follows its edits", async () => {
    const { flagdPort } = await vane.started();
    expect(vane.output()).toContain(`served and followed as environment "local"`);
    await OpenFeature.setProviderAndWait(
      "file",
      new FlagdProvider({ host: "127.0.0.1", port: flagdPort!, resolverType: "rpc", cache: "disabled", deadlineMs: 2_000 }),
    );
    const client = OpenFeature.getClient("file");
    expect(await client.getStringDetails("header-color", "", { targetingKey: "u", email: "ann@example.com" })).toMatchObject({
      value: "#00f",
      reason: "TARGETING_MATCH",
    });
    expect(await client.getStringDetails("header-color", "")).toMatchObject({ value: "#f00", variant: "red", reason: "DEFAULT" });

    const changed = new Promise<string[]>((resolve) => client.addHandler(ProviderEvents.ConfigurationChanged, (d) => resolve(d?.flagsChanged ?? [])));
    await writeFile(file, flags("blue"));
    expect(await changed).toEqual(["header-color"]);
    expect(await client.getStringValue("header-color", "")).toBe("#00f");
  }, 40_000);

  it("stops with a message naming the file when it is missing", async () => {
    const missing = startVane(["--flagd-file", join(dir, "nope.json")]);
    try {
      // Stopping the services started before the failure takes a few seconds; on a loaded machine more.
      await expect(missing.waitForOutput(/Press Ctrl-C/, 60_000)).rejects.toThrow(/exited early/);
      expect(missing.output()).toMatch(/nope\.json does not exist/);
    } finally {
      await missing.cleanup();
    }
  }, 90_000);
});
