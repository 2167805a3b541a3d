/**
 * `npm run flagd -- start --uri file:a.json --uri b.json`: the evaluator alone as a drop-in for
 * flagd with file sources, with no Postgres or NATS (their settings point nowhere). Paths are
 * relative to the caller's directory; the unmodified flagd providers (rpc on the evaluation port,
 * in-process on the sync port) and the OFREP provider (on the OFREP port) see the two files merged
 * as flagd merges them, each file by its flag set id, the static context value, and an edit that
 * removes a key from the later file bringing back the earlier file's; bad options fail clearly.
 */
import { type ChildProcess, spawn, spawnSync } from "node:child_process";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { FlagdProvider } from "@openfeature/flagd-provider";
import { OFREPProvider } from "@openfeature/ofrep-provider";
import { OpenFeature, ProviderEvents } from "@openfeature/server-sdk";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { eventually } from "#test/support/harness.ts";

const script = fileURLToPath(new URL("../scripts/flagd.ts", import.meta.url));
/** tsx by its path: the processes run in other directories, where `--import tsx` would not resolve. */
const tsx = new URL("../node_modules/tsx/dist/loader.mjs", import.meta.url).href;
/** No Postgres, no NATS: settings that would fail if anything tried them. */
const env = { ...process.env, VANE_DATABASE_URL: "postgres://nobody@127.0.0.1:1/none", VANE_NATS_URL: "nats://127.0.0.1:1", NATS_URL: "", INIT_CWD: "" };

const a = {
  metadata: { flagSetId: "team-a" },
  $evaluators: { paid: { in: [{ var: "plan" }, ["pro"]] } },
  flags: {
    shared: { state: "ENABLED", variants: { a: "from-a", other: "other" }, defaultVariant: "a" },
    "only-a": { state: "ENABLED", variants: { on: true, off: false }, defaultVariant: "off", targeting: { if: [{ $ref: "paid" }, "on", "off"] } },
  },
};
const b = (withShared: boolean) => ({
  metadata: { flagSetId: "team-b" },
  // The same rule name as a.json's, meaning something else: each file's flags keep their own.
  $evaluators: { paid: { in: [{ var: "plan" }, ["enterprise"]] } },
  flags: {
    ...(withShared ? { shared: { state: "ENABLED", variants: { b: "from-b", other: "other" }, defaultVariant: "b" } } : {}),
    "only-b": { state: "ENABLED", variants: { on: true, off: false }, defaultVariant: "off", targeting: { if: [{ $ref: "paid" }, "on", "off"] } },
    region: { state: "ENABLED", variants: { eu: "eu", us: "us" }, defaultVariant: "us", targeting: { if: [{ "==": [{ var: "region" }, "eu"] }, "eu", "us"] } },
  },
});

let dir: string;
let child: ChildProcess;
let output = "";
let ports: { evaluationPort: number; syncPort: number; ofrepPort: number; managementPort: number };

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), "vane-flagd-dropin-"));
  await writeFile(join(dir, "a.json"), JSON.stringify(a));
  await writeFile(join(dir, "b.json"), JSON.stringify(b(true)));
  // Started in the flag files' directory, with relative paths, as a flagd user would.
  child = spawn(
    process.execPath,
    ["--import", tsx, script, "start", "--uri", "file:a.json", "--uri", "b.json", "-p", "0", "-g", "0", "-r", "0", "-m", "0", "-X", "region=eu"],
    { cwd: dir, env, stdio: ["ignore", "pipe", "pipe"] },
  );
  child.stdout!.on("data", (d) => (output += d));
  child.stderr!.on("data", (d) => (output += d));
  await eventually(() => output.includes("Press Ctrl-C to stop."), 30_000, "the ready summary");
  const port = (what: string) => Number(new RegExp(`${what} \\(\\d+\\)\\s+\\S+:(\\d+)`).exec(output)![1]);
  ports = { evaluationPort: port("evaluation"), syncPort: port("sync"), ofrepPort: port("OFREP"), managementPort: port("health, metrics") };
}, 40_000);
afterAll(async () => {
  await OpenFeature.close();
  if (child && child.exitCode === null) {
    const exited = new Promise((r) => child.once("exit", r));
    child.kill("SIGTERM");
    await exited;
  }
  await rm(dir, { recursive: true, force: true });
});

describe("the drop-in flagd mode", () => {
  it("is ready on flagd's four kinds of port", async () => {
    const ready = await fetch(`http://127.0.0.1:${ports.managementPort}/readyz`);
    expect(ready.status).toBe(200);
    expect(await (await fetch(`http://127.0.0.1:${ports.managementPort}/metrics`)).text()).toContain("vane-flagd");
  });

  it("merges the files for the rpc provider as flagd does, and serves each file by its flag set id", async () => {
    const rpc = (selector?: string) => new FlagdProvider({ host: "127.0.0.1", port: ports.evaluationPort, resolverType: "rpc", cache: "disabled", selector });
    await OpenFeature.setProviderAndWait("merged", rpc());
    await OpenFeature.setProviderAndWait("team-a", rpc("team-a"));
    const merged = OpenFeature.getClient("merged");
    expect(await merged.getStringDetails("shared", "")).toMatchObject({ value: "from-b", flagMetadata: { flagSetId: "team-b" } });
    expect(await merged.getBooleanValue("only-a", false, { plan: "pro" })).toBe(true);
    expect(await merged.getBooleanValue("only-b", false, { plan: "pro" })).toBe(false); // b's own rule: enterprise
    expect(await merged.getBooleanValue("only-b", false, { plan: "enterprise" })).toBe(true);
    // The static context value wins over the caller's.
    expect(await merged.getStringValue("region", "", { region: "us" })).toBe("eu");
    const teamA = OpenFeature.getClient("team-a");
    expect(await teamA.getStringValue("shared", "")).toBe("from-a");
    expect((await teamA.getStringDetails("region", "none")).errorCode).toBe("FLAG_NOT_FOUND");
  }, 30_000);

  it("feeds the in-process provider the merged flags and the static context", async () => {
    await OpenFeature.setProviderAndWait("in-process", new FlagdProvider({ host: "127.0.0.1", port: ports.syncPort, resolverType: "in-process" }));
    const c = OpenFeature.getClient("in-process");
    expect(await c.getStringValue("shared", "")).toBe("from-b");
    expect(await c.getBooleanValue("only-a", false, { plan: "pro" })).toBe(true);
    expect(await c.getStringValue("region", "")).toBe("eu");
  }, 30_000);

  it("answers OFREP without credentials, like flagd's OFREP port", async () => {
    await OpenFeature.setProviderAndWait("ofrep", new OFREPProvider({ baseUrl: `http://127.0.0.1:${ports.ofrepPort}` }));
    const c = OpenFeature.getClient("ofrep");
    expect(await c.getStringDetails("shared", "")).toMatchObject({ value: "from-b", variant: "b", reason: "STATIC" });
    expect(await c.getStringValue("region", "")).toBe("eu");
    const teamA = await fetch(`http://127.0.0.1:${ports.ofrepPort}/ofrep/v1/evaluate/flags/shared`, {
      method: "POST",
      headers: { "flagd-selector": "team-a" },
    });
    expect(await teamA.json()).toMatchObject({ key: "shared", value: "from-a" });
  }, 30_000);

  it("brings back the earlier file's flag when the later file drops it", async () => {
    const merged = OpenFeature.getClient("merged");
    const changed = new Promise<void>((resolve) => merged.addHandler(ProviderEvents.ConfigurationChanged, () => resolve()));
    await writeFile(join(dir, "b.json"), JSON.stringify(b(false)));
    await changed;
    await eventually(async () => (await merged.getStringValue("shared", "")) === "from-a", 10_000, "shared from a.json again");
  }, 30_000);
});

describe("the drop-in flagd mode refuses", () => {
  const run = (args: string[]) => spawnSync(process.execPath, ["--import", tsx, script, ...args], { cwd: dir, env, encoding: "utf8", timeout: 60_000 });

  it("a missing file, naming it, with exit code 1", () => {
    const res = run(["start", "--uri", "file:nope.json", "-p", "0", "-g", "0", "-r", "0", "-m", "0"]);
    expect(res.status).toBe(1);
    expect(res.stderr).toMatch(/flagd file .*nope\.json does not exist/);
  });

  it("remote sources, bad ports and bad context values, with usage and exit code 2", () => {
    for (const [args, message] of [
      [["--uri", "https://example.com/flags.json"], /only file sources are served in drop-in mode/],
      [[], /--uri is required/],
      [["--uri", "a.json", "-p", "99999"], /--port must be a port number/],
      [["--uri", "a.json", "-X", "novalue"], /--context-value novalue: expected KEY=VALUE/],
    ] as const) {
      const res = run([...args]);
      expect(res.status, args.join(" ")).toBe(2);
      expect(res.stderr).toMatch(message);
      expect(res.stderr).toContain("usage: npm run flagd");
    }
  });
});
