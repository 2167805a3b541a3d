/**
 * `--flagd-file`: a flagd flag-definition file served as the default flagd environment and
 * followed as it changes, with no NATS at all; and how flagd callers present credentials.
 */
import { mkdtemp, rm, writeFile, rename } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join, relative } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { FlagdProvider } from "@openfeature/flagd-provider";
import { OpenFeature, ProviderEvents } from "@openfeature/server-sdk";
import { createSnapshotStore } from "../snapshots/store.ts";
import { createFlagdFileSource } from "../snapshots/file-source.ts";
import { createTestLogger } from "#test/support/harness.ts";
import { createTestTokens, eventually, fixture, fixtureText, startEvaluator, type EvaluatorHarness } from "./harness.ts";

let dir: string;
let file: string;
let h: EvaluatorHarness;
let tokens: Awaited<ReturnType<typeof createTestTokens>>;

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), "vane-flagd-file-"));
  file = join(dir, "flags.json");
  await writeFile(file, fixtureText);
  tokens = await createTestTokens();
  h = await startEvaluator({ natsUrl: null, verifier: tokens.verifier, env: { VANE_FLAGD_FILE: file } });
});
afterAll(async () => {
  await OpenFeature.close();
  await h?.close();
  await rm(dir, { recursive: true, force: true });
});

const post = (port: number, path: string, body: unknown, headers: Record<string, string> = {}) =>
  fetch(`http://127.0.0.1:${port}${path}`, { method: "POST", headers: { "content-type": "application/json", ...headers }, body: JSON.stringify(body) });

describe("flagd file source", () => {
  it("serves the file as the default environment, ready without NATS", async () => {
    expect((await fetch(`${h.baseUrl}/readyz`)).status).toBe(200);
    const res = await post(h.flagd.evaluationPort!, "/flagd.evaluation.v2.Service/ResolveString", { flagKey: "string-static" });
    expect(await res.json()).toMatchObject({ value: "#00f", variant: "blue", reason: "STATIC", metadata: { flagSetId: "fixture" } });
  });

  it("follows edits (including atomic replacement) and reaches an in-process provider with no selector", async () => {
    await OpenFeature.setProviderAndWait("file", new FlagdProvider({ host: "127.0.0.1", port: h.flagd.syncPort!, resolverType: "in-process" }));
    const client = OpenFeature.getClient("file");
    const changed: string[][] = [];
    client.addHandler(ProviderEvents.ConfigurationChanged, (d) => void changed.push(d?.flagsChanged ?? []));
    expect(await client.getStringValue("string-static", "")).toBe("#00f");
    const edited = structuredClone(fixture) as any;
    edited.flags["string-static"].defaultVariant = "red";
    await writeFile(`${file}.tmp`, JSON.stringify(edited));
    await rename(`${file}.tmp`, file);
    await eventually(() => changed.some((c) => c.includes("string-static")), 5_000, "change event");
    expect(await client.getStringValue("string-static", "")).toBe("#f00");
    expect(h.module.store.get("local")!.version).toBe(2);
  });

  it("keeps serving the last good version when the file turns invalid", async () => {
    await writeFile(file, "{ not json");
    expect(await h.module.fileSource!.reload()).toBe(false);
    expect(h.module.store.get("local")!.version).toBe(2);
  });

  it("refuses to start on a missing or invalid file, naming it", async () => {
    const store = createSnapshotStore();
    const missing = createFlagdFileSource({ path: join(dir, "nope.json"), store, logger: createTestLogger() });
    await expect(missing.start()).rejects.toThrow(/does not exist/);
    await writeFile(join(dir, "bad.json"), JSON.stringify({ flags: { f: { state: "ENABLED", variants: {}, defaultVariant: "x" } } }));
    const bad = createFlagdFileSource({ path: join(dir, "bad.json"), store, logger: createTestLogger() });
    await expect(bad.start()).rejects.toThrow(/bad\.json is not a valid flag definition/);
  });
});

describe("flagd credentials", () => {
  it("takes the environment from a key's token, and refuses selectors or keys that do not fit", async () => {
    await writeFile(file, fixtureText);
    await h.module.fileSource!.reload();
    const port = h.flagd.evaluationPort!;
    const key = await tokens.sign({ sub: "k", env: "local", kind: "server" });
    const ok = await post(port, "/flagd.evaluation.v1.Service/ResolveBoolean", { flagKey: "bool-static" }, { authorization: `Bearer ${key}` });
    expect(await ok.json()).toMatchObject({ reason: "STATIC", variant: "off" });
    const other = await post(
      port,
      "/flagd.evaluation.v1.Service/ResolveBoolean",
      { flagKey: "bool-static" },
      { authorization: `Bearer ${key}`, "flagd-selector": "env-x" },
    );
    expect(await other.json()).toMatchObject({ code: "permission_denied" });
    const person = await tokens.sign({ sub: "u", org: "o", role: "owner", kind: "user" });
    const denied = await post(port, "/flagd.evaluation.v1.Service/ResolveBoolean", { flagKey: "bool-static" }, { authorization: `Bearer ${person}` });
    expect(await denied.json()).toMatchObject({ code: "permission_denied" });
    const bad = await post(port, "/flagd.evaluation.v1.Service/ResolveBoolean", { flagKey: "bool-static" }, { authorization: "Bearer nope" });
    expect(await bad.json()).toMatchObject({ code: "unauthenticated" });
    const unknown = await post(port, "/flagd.evaluation.v1.Service/ResolveBoolean", { flagKey: "bool-static" }, { "flagd-selector": "env-unknown" });
    expect(await unknown.json()).toMatchObject({ code: "not_found" });
  });
});

describe("flagd selectors for the file", () => {
  it("accepts the file's flag set id, flagSetId=<id> and its path, as flagd users send them", async () => {
    await writeFile(file, fixtureText);
    await h.module.fileSource!.reload();
    const port = h.flagd.evaluationPort!;
    for (const selector of ["fixture", "flagSetId=fixture", file, `file:${file}`, "local"]) {
      const res = await post(port, "/flagd.evaluation.v1.Service/ResolveString", { flagKey: "string-static" }, { "flagd-selector": selector });
      expect(await res.json(), selector).toMatchObject({ value: "#00f", reason: "STATIC" });
    }
    const sync = await post(h.flagd.syncPort!, "/flagd.sync.v1.FlagSyncService/FetchAllFlags", { selector: "flagSetId=fixture" });
    expect(JSON.parse(((await sync.json()) as { flagConfiguration: string }).flagConfiguration).metadata).toEqual({ flagSetId: "fixture" });
    const other = await post(port, "/flagd.evaluation.v1.Service/ResolveString", { flagKey: "string-static" }, { "flagd-selector": "flagSetId=other" });
    expect(await other.json()).toMatchObject({ code: "not_found" });
  });

  it("reaches an in-process provider selecting the flag set id", async () => {
    await OpenFeature.setProviderAndWait(
      "by-id",
      new FlagdProvider({ host: "127.0.0.1", port: h.flagd.syncPort!, resolverType: "in-process", selector: "flagSetId=fixture", deadlineMs: 2_000 }),
    );
    expect(await OpenFeature.getClient("by-id").getStringValue("string-static", "")).toBe("#00f");
  });

  it("names the file by the path as given (relative too) and follows the flag set id through edits", async () => {
    const store = createSnapshotStore();
    const named = join(dir, "named.json");
    await writeFile(named, fixtureText);
    const given = relative(process.cwd(), named);
    const source = createFlagdFileSource({ path: given, store, logger: createTestLogger() });
    await source.start();
    try {
      expect([given, named, `file:${given}`, "fixture"].map((s) => source.names(s))).toEqual([true, true, true, true]);
      expect(source.names("local")).toBe(false);
      await writeFile(named, JSON.stringify({ ...fixture, metadata: { flagSetId: "renamed" } }));
      await source.reload();
      expect([source.names("renamed"), source.names("fixture")]).toEqual([true, false]);
    } finally {
      source.stop();
    }
  });
});
