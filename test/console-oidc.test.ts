/**
 * Console sign-in through a real OpenID Connect provider (oidc-provider on a loopback port) against
 * `npm start`: an admin invites a person by email, Chromium clicks "Sign in with <provider>",
 * signs in on the provider's own pages, lands back on the projects page with a Vane session
 * (Authorization Code + PKCE, then ExchangeOidcToken), and signs out. Screenshots go to
 * .tmp/console-oidc-*.png.
 */
import { mkdirSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { type Browser, chromium, type Page } from "playwright-core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { CHROMIUM_ARGS, CHROMIUM_HINT, findChromium } from "./chromium.ts";
import { startTestProvider, TEST_CLIENT_ID, type TestProvider } from "./support/oidc-provider.ts";
import { adminSession, startVane, type VaneProcess } from "./vane-process.ts";

const shots = fileURLToPath(new URL("../.tmp/", import.meta.url));
const EMAIL = "dana@example.test";
let provider: TestProvider;
let vane: VaneProcess;
let browser: Browser;

beforeAll(async () => {
  provider = await startTestProvider(EMAIL);
  vane = startVane([], { VANE_OIDC_ISSUER: provider.issuer, VANE_OIDC_AUDIENCE: TEST_CLIENT_ID, VANE_OIDC_CLIENT_ID: TEST_CLIENT_ID });
  const executablePath = findChromium();
  if (!executablePath) throw new Error(`the console test needs Chromium: ${CHROMIUM_HINT}`);
  browser = await chromium.launch({ executablePath, args: CHROMIUM_ARGS, headless: true });
  mkdirSync(shots, { recursive: true });
}, 60_000);
afterAll(async () => {
  await browser?.close();
  await vane?.cleanup();
  await provider?.close();
});

const shot = (page: Page, name: string) => page.screenshot({ path: `${shots}console-oidc-${name}.png`, fullPage: true });

describe("console sign-in with OpenID Connect", () => {
  it("signs an invited person in at the provider, lands on the projects page, and signs out", async () => {
    const started = await vane.started(60_000);
    const { call, accessToken } = await adminSession(started, "development");
    await call("vane.identity.v1.IdentityService/AddMember", { organizationId: started.organizationId, email: EMAIL, role: "ROLE_EDITOR" }, accessToken);
    const options = await call<{ oidcIssuer: string; oidcClientId: string; oidcScopes: string[] }>("vane.identity.v1.AuthService/GetSignInOptions", {});
    expect(options).toMatchObject({ oidcIssuer: provider.issuer, oidcClientId: TEST_CLIENT_ID });
    expect(options.oidcScopes).toEqual(expect.arrayContaining(["openid", "email"]));

    const page = await browser.newPage();
    const errors: string[] = [];
    page.on("pageerror", (e) => errors.push(e.message));
    await page.goto(`${started.baseUrl}/`);
    const signInButton = page.getByRole("button", { name: `Sign in with ${new URL(provider.issuer).host}` });
    await signInButton.waitFor();
    await expect(page.getByLabel("API key").isVisible()).resolves.toBe(true); // the key sign-in stays
    await shot(page, "signin");
    await signInButton.click();

    // The provider's own pages: sign-in, then consent.
    await page.locator("input[name=login]").fill("dana");
    await page.locator("input[name=password]").fill("any");
    await page.getByRole("button", { name: "Sign-in" }).click();
    await page.getByRole("button", { name: "Continue" }).click();

    await page.getByRole("heading", { name: "Projects" }).waitFor();
    expect(page.url()).toBe(`${started.baseUrl}/#/`); // code and state left the address bar
    await page.getByRole("link", { name: "Development" }).first().waitFor();
    await shot(page, "projects");
    // The session speaks for the invited member, as an editor of the organization.
    const token = await page.evaluate<string>('JSON.parse(sessionStorage.getItem("vane.console.session")).token');
    const me = await call<{ principal: { organizationId: string; role: string; kind: string } }>("vane.identity.v1.AuthService/WhoAmI", {}, token);
    expect(me.principal).toMatchObject({ organizationId: started.organizationId, role: "ROLE_EDITOR" });

    await page.getByRole("button", { name: "Sign out" }).click();
    await signInButton.waitFor();
    expect(errors).toEqual([]);
  }, 120_000);
});
