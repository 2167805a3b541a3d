/**
 * A real browser against `npm start`: a page served from another origin (so every call is
 * cross-origin, with CORS preflights) bundles Connect-Web, the generated clients and the unmodified
 * flagd web provider (test/browser/app.ts), and runs in headless Chromium driven by
 * playwright-core. It exchanges a client key, evaluates over Connect and gRPC-Web (client-visible
 * flags only), watches a server stream while the flag is edited, tracks events with one bad event
 * in the batch, and follows an edit through the flagd web provider.
 */
import { fileURLToPath } from "node:url";
import { type Browser, chromium, type Page } from "playwright-core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { eventually } from "#test/support/harness.ts";
import type { BrowserApi } from "./browser/app.ts";
import { CHROMIUM_ARGS, CHROMIUM_HINT, findChromium, servePage } from "./chromium.ts";
import { adminSession, startVane, type VaneProcess } from "./vane-process.ts";

let vane: VaneProcess;
let site: Awaited<ReturnType<typeof servePage>>;
let browser: Browser | undefined;

/** Calls `window.vane[name](...args)` in the page and returns its JSON result. */
type Remote = <K extends keyof BrowserApi>(name: K, ...args: Parameters<BrowserApi[K]>) => Promise<Awaited<ReturnType<BrowserApi[K]>>>;
const remote =
  (page: Page): Remote =>
  (name, ...args) =>
    page.evaluate(([n, a]) => (globalThis as unknown as { vane: Record<string, (...x: unknown[]) => unknown> }).vane[n as string](...(a as unknown[])), [
      name,
      args,
    ] as const) as never;

beforeAll(async () => {
  vane = startVane();
  const executablePath = findChromium();
  if (!executablePath) throw new Error(`the browser test needs Chromium: ${CHROMIUM_HINT}`);
  site = await servePage(fileURLToPath(new URL("./browser/app.ts", import.meta.url)), "Vane in a browser");
  browser = await chromium.launch({ executablePath, args: CHROMIUM_ARGS, headless: true });
}, 60_000);
afterAll(async () => {
  await browser?.close();
  await site?.close();
  await vane?.cleanup();
});

describe("a web page from another origin", () => {
  it("evaluates, watches, tracks and uses the flagd web provider through CORS", async () => {
    const started = await vane.started();
    const { call, accessToken, projectId, environmentId } = await adminSession(started, "development");
    const flags = (path: string, body: unknown) => call(`vane.flags.v1.FlagService/${path}`, body, accessToken);
    const boolean = [
      { key: "on", value: true },
      { key: "off", value: false },
    ];
    await flags("CreateFlag", { projectId, key: "banner", name: "Banner", type: "FLAG_TYPE_BOOLEAN", variants: boolean, clientVisible: true });
    await flags("CreateFlag", { projectId, key: "internal-tools", name: "Internal tools", type: "FLAG_TYPE_BOOLEAN", variants: boolean });
    let bannerVersion = "0";
    const setBanner = async (defaultVariant: string) => {
      const r = await call<{ environment: { version: string } }>(
        "vane.flags.v1.FlagService/UpdateFlagEnvironment",
        { environmentId, flagKey: "banner", expectedVersion: bannerVersion, enabled: true, defaultVariant },
        accessToken,
      );
      bannerVersion = r.environment.version;
    };
    await setBanner("off");
    await flags("UpdateFlagEnvironment", { environmentId, flagKey: "internal-tools", enabled: true, defaultVariant: "on" });
    const { secret: clientKey } = await call<{ secret: string }>(
      "vane.identity.v1.IdentityService/CreateApiKey",
      { environmentId, kind: "API_KEY_KIND_CLIENT", name: "web app" },
      accessToken,
    );

    const page = await browser!.newPage();
    const consoleErrors: string[] = [];
    page.on("pageerror", (e) => consoleErrors.push(e.message));
    await page.goto(`${site.url}/`);
    await page.waitForFunction(() => "vane" in globalThis);
    const vaneIn = remote(page);
    const { baseUrl } = started;

    // A wrong key is a clear Connect error in the browser, not an opaque CORS failure.
    expect(await vaneIn("badKey", baseUrl)).toMatchObject({ code: "Unauthenticated" });
    expect((await vaneIn("exchange", baseUrl, clientKey)).tokenLength).toBeGreaterThan(20);

    // Client-visible flags only, over Connect (JSON) and gRPC-Web (binary).
    const all = await eventually(
      async () => {
        const r = await vaneIn("evaluateAll", { targetingKey: "visitor-1" });
        if (!("banner" in r.flags)) throw new Error(`not there yet: ${JSON.stringify(r)}`);
        return r;
      },
      10_000,
      "the flags to reach the evaluator",
    );
    expect(all.flags).toEqual({ banner: { value: false, variant: "off" } });
    expect(await vaneIn("evaluateGrpcWeb", baseUrl, "banner", { targetingKey: "visitor-1" })).toMatchObject({ value: false, variant: "off" });
    expect(await vaneIn("evaluateGrpcWeb", baseUrl, "internal-tools", { targetingKey: "visitor-1" })).toEqual({
      code: "NotFound",
      message: 'flag "internal-tools" not found',
    });

    // A Connect server stream in the browser sees an edit.
    await vaneIn("startWatch", { targetingKey: "visitor-1" });
    await eventually(
      async () => {
        const w = await vaneIn("watched");
        if (w.messages.length === 0) throw new Error(`no first message: ${JSON.stringify(w)}`);
        return true;
      },
      10_000,
      "the first watch message",
    );
    await setBanner("on");
    const watched = await eventually(
      async () => {
        const w = await vaneIn("watched");
        if (!w.messages.some((m) => m.values.banner === true)) throw new Error(`no change yet: ${JSON.stringify(w)}`);
        return w;
      },
      10_000,
      "the edit on the watch stream",
    );
    expect(watched.error).toBeUndefined();
    expect(watched.messages[0]).toMatchObject({ values: { banner: false }, changed: ["banner"] });
    expect(watched.messages.at(-1)).toMatchObject({ values: { banner: true }, changed: ["banner"] });
    expect(watched.messages.every((m) => !("internal-tools" in m.values))).toBe(true);
    await vaneIn("stopWatch");

    // Events: the good ones are accepted, the bad one named by index and field.
    expect(
      await vaneIn("track", [
        { name: "page_view", unitKey: "visitor-1" },
        { name: "", unitKey: "visitor-1" },
        { name: "signup", unitKey: "visitor-1", value: 1 },
      ]),
    ).toEqual({ accepted: 2, ids: 2, rejected: [{ index: 1, field: "name" }] });

    // The unmodified flagd web provider, on the flagd port (its selector: the client key), follows an edit.
    const flagdPort = started.flagdPort!;
    expect(await vaneIn("flagd", "127.0.0.1", flagdPort, clientKey, "banner", "visitor-1")).toMatchObject({
      value: true,
      variant: "on",
      reason: "STATIC",
      errorCode: null,
    });
    await setBanner("off");
    const after = await eventually(
      async () => {
        const d = await vaneIn("flagdNow", "banner");
        if (d.value !== false) throw new Error(`not yet: ${JSON.stringify(d)}`);
        return d;
      },
      10_000,
      "the edit to reach the web provider",
    );
    expect(after).toMatchObject({ variant: "off", reason: "STATIC" });
    // The web provider re-fetches on `configuration_change` and emits the event without flag names.
    expect(after.changes.length).toBeGreaterThan(0);
    expect(consoleErrors).toEqual([]);
  }, 90_000);
});
