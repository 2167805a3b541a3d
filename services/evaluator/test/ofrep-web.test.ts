/**
 * The unmodified OFREP web provider (@openfeature/ofrep-web-provider with the web SDK) in headless
 * Chromium, on a page of another origin: it reaches the evaluator through CORS preflights with a
 * client key, resolves the client-visible flags, gets FLAG_NOT_FOUND for the rest, polls with
 * If-None-Match and is answered 304 while nothing changed, follows a new version and a new
 * context, and fails as OpenFeature expects with a wrong key.
 */
import { fileURLToPath } from "node:url";
import { type Browser, chromium, type Page } from "playwright-core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { CHROMIUM_ARGS, CHROMIUM_HINT, findChromium, servePage } from "#test/chromium.ts";
import { createTestTokens, eventually, fixture, snapshotOf, startEvaluator, type EvaluatorHarness } from "./harness.ts";
import type { OfrepWebApi } from "./ofrep-web-app.ts";

const ENV = "env-ofrep-web";
const CLIENT_VISIBLE = ["bool-static", "in-list"];
let h: EvaluatorHarness;
let site: Awaited<ReturnType<typeof servePage>>;
let siteUrl: string;
let browser: Browser;
let page: Page;
let clientKey: string;
/** Every bulk evaluation the page made, by HTTP status. */
const bulkStatuses: number[] = [];

type Remote = <K extends keyof OfrepWebApi>(name: K, ...args: Parameters<OfrepWebApi[K]>) => Promise<Awaited<ReturnType<OfrepWebApi[K]>>>;
/** Calls `window.vane[name](...args)` in the page (arguments as plain JSON: flag values are recursive types). */
const call: Remote = (name, ...args) =>
  page.evaluate(([n, a]: [string, unknown[]]) => (globalThis as unknown as { vane: Record<string, (...x: unknown[]) => unknown> }).vane[n](...a), [
    name,
    args as unknown[],
  ] as [string, unknown[]]) as never;

beforeAll(async () => {
  const executablePath = findChromium();
  if (!executablePath) throw new Error(`the OFREP web test needs Chromium: ${CHROMIUM_HINT}`);
  site = await servePage(fileURLToPath(new URL("./ofrep-web-app.ts", import.meta.url)), "OFREP in a browser");
  siteUrl = site.url;

  const tokens = await createTestTokens();
  // The page's origin is the only one allowed: every call is a real cross-origin request.
  h = await startEvaluator({ verifier: tokens.verifier, flagd: false, env: { VANE_CORS_ORIGINS: siteUrl } });
  clientKey = await tokens.sign({ sub: "k-web", org: "org-1", prj: "prj-1", env: ENV, kind: "client" });
  await h.put(snapshotOf(fixture, { environmentId: ENV, version: 1, clientVisible: CLIENT_VISIBLE }));
  await eventually(() => h.module.store.get(ENV), 5_000, "snapshot loaded");

  browser = await chromium.launch({ executablePath, args: CHROMIUM_ARGS, headless: true });
  page = await browser.newPage();
  page.on("response", (res) => {
    if (new URL(res.url()).pathname === "/ofrep/v1/evaluate/flags" && res.request().method() === "POST") bulkStatuses.push(res.status());
  });
  await page.goto(siteUrl);
  await page.waitForFunction(() => "vane" in globalThis);
}, 60_000);
afterAll(async () => {
  await browser?.close();
  await site?.close();
  await h?.close();
});

describe("the OFREP web provider in Chromium", () => {
  it("resolves the client-visible flags through CORS with a client key, and nothing else", async () => {
    expect(await call("start", "vane", h.baseUrl, clientKey, { targetingKey: "user-1", country: "de" }, 200)).toEqual({ ready: true, error: null });
    expect(await call("details", "vane", "in-list", "x")).toEqual({ value: "EU", variant: "eu", reason: "TARGETING_MATCH", errorCode: null });
    expect(await call("details", "vane", "bool-static", true)).toEqual({ value: false, variant: "off", reason: "STATIC", errorCode: null });
    // A server-side flag is not shown to a browser's key.
    expect(await call("details", "vane", "int-static", 7)).toMatchObject({ value: 7, reason: "ERROR", errorCode: "FLAG_NOT_FOUND" });
    expect(await call("details", "vane", "in-list", false)).toMatchObject({ value: false, errorCode: "TYPE_MISMATCH" });
  });

  it("polls with the ETag and is answered 304 while nothing changed", async () => {
    await eventually(() => bulkStatuses.filter((s) => s === 304).length >= 2, 10_000, "two 304 answers to the provider's polls");
    expect(bulkStatuses[0]).toBe(200);
    expect(bulkStatuses.every((s) => s === 200 || s === 304)).toBe(true);
    expect(await call("changes")).toBe(0);
  });

  it("follows a new version of the environment and a new context", async () => {
    const changed = structuredClone(fixture);
    (changed.flags as Record<string, { defaultVariant: string }>)["bool-static"].defaultVariant = "on";
    await h.put(snapshotOf(changed, { environmentId: ENV, version: 2, clientVisible: CLIENT_VISIBLE }));
    await eventually(async () => (await call("details", "vane", "bool-static", false)).value === true, 10_000, "the provider sees version 2");
    expect(await call("changes")).toBeGreaterThan(0);

    await call("setContext", "vane", { targetingKey: "user-1", country: "us" });
    expect(await call("details", "vane", "in-list", "x")).toEqual({ value: "OTHER", variant: "other", reason: "TARGETING_MATCH", errorCode: null });
  });

  it("does not become ready with a wrong key, and answers the caller's default with an error", async () => {
    const started = await call("start", "wrong-key", h.baseUrl, "not-a-token", { targetingKey: "user-1" }, 0);
    expect(started.ready).toBe(false);
    expect(await call("details", "wrong-key", "bool-static", true)).toMatchObject({ value: true, reason: "ERROR" });
  });
});
