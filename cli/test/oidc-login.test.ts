/**
 * `vane login --oidc` against `npm start` and a real OpenID provider (oidc-provider on a loopback
 * port): the CLI prints the device grant's verification URL, Chromium plays the person confirming
 * it at the provider, the CLI stores the session (0600), `vane whoami` works with it (refreshing an
 * expired ID token), and `vane logout` forgets it.
 */
import { readFile, stat, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { type Browser, chromium } from "playwright-core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { CHROMIUM_ARGS, CHROMIUM_HINT, findChromium } from "#test/chromium.ts";
import { startTestProvider, TEST_CLIENT_ID, type TestProvider } from "#test/support/oidc-provider.ts";
import { adminSession, startVane, type VaneProcess } from "#test/vane-process.ts";
import { createCli, type Cli } from "./run-vane.ts";

const EMAIL = "erin@example.test";
let provider: TestProvider;
let server: VaneProcess;
let cli: Cli;
let browser: Browser;

beforeAll(async () => {
  provider = await startTestProvider(EMAIL);
  server = startVane([], { VANE_OIDC_ISSUER: provider.issuer, VANE_OIDC_AUDIENCE: TEST_CLIENT_ID });
  cli = await createCli();
  const executablePath = findChromium();
  if (!executablePath) throw new Error(`the OIDC login test needs Chromium: ${CHROMIUM_HINT}`);
  browser = await chromium.launch({ executablePath, args: CHROMIUM_ARGS, headless: true });
}, 60_000);
afterAll(async () => {
  await browser?.close();
  await server?.cleanup();
  await cli?.cleanup();
  await provider?.close();
});

describe("vane login --oidc", () => {
  it("signs in with the device grant, then whoami and logout use the stored session", async () => {
    const started = await server.started(60_000);
    const { call, accessToken } = await adminSession(started, "development");
    await call("vane.identity.v1.IdentityService/AddMember", { organizationId: started.organizationId, email: EMAIL, role: "ROLE_VIEWER" }, accessToken);

    const login = cli.start(["login", "--url", started.baseUrl, "--oidc"]);
    await login.waitFor(/open (http\S+)/);
    const verification = /open (http\S+)/.exec(login.output().stderr)![1];
    expect(verification.startsWith(`${provider.issuer}/`)).toBe(true);

    // The person, in a browser: confirm the code, sign in at the provider, consent.
    const page = await browser.newPage();
    await page.goto(verification);
    await page.getByRole("button", { name: "Continue", exact: true }).click();
    await page.locator("input[name=login]").fill("erin");
    await page.locator("input[name=password]").fill("any");
    await page.getByRole("button", { name: "Sign-in" }).click();
    await page.getByRole("button", { name: "Continue", exact: true }).click();
    await page
      .getByText(/success/i)
      .first()
      .waitFor();

    const done = await login.exited;
    expect(done.code, done.stderr).toBe(0);
    expect(done.stderr).toContain('profile "default" saved');
    expect((await stat(join(cli.configHome, "vane", "config"))).mode & 0o777).toBe(0o600);

    const me = await cli.run(["whoami", "-o", "json"]);
    expect(me.code, me.stderr).toBe(0);
    expect(JSON.parse(me.stdout)).toMatchObject({ url: started.baseUrl, role: "viewer", organizationId: started.organizationId });

    // An expired ID token is refreshed with the refresh token, and the new one stored.
    const configFile = join(cli.configHome, "vane", "config");
    const stored = JSON.parse(await readFile(configFile, "utf8")) as {
      profiles: { default: { oidc: { idToken: string; idTokenExpiresAt: number; refreshToken?: string } } };
    };
    const before = stored.profiles.default.oidc;
    expect(before.refreshToken).toBeTruthy();
    stored.profiles.default.oidc.idTokenExpiresAt = 0;
    await writeFile(configFile, JSON.stringify(stored));
    expect((await cli.run(["whoami"])).code).toBe(0);
    const after = (JSON.parse(await readFile(configFile, "utf8")) as typeof stored).profiles.default.oidc;
    expect(after.idToken).not.toBe(before.idToken);
    expect(after.idTokenExpiresAt).toBeGreaterThan(Date.now());

    expect((await cli.run(["logout"])).code).toBe(0);
    expect((await cli.run(["whoami"])).stderr).toMatch(/not logged in/);
  }, 120_000);

  it("signs in through the browser and a loopback callback when the provider has no device grant", async () => {
    const noDevice = await startTestProvider(EMAIL, { deviceFlow: false });
    const other = startVane([], { VANE_OIDC_ISSUER: noDevice.issuer, VANE_OIDC_AUDIENCE: TEST_CLIENT_ID });
    try {
      const started = await other.started(60_000);
      const { call, accessToken } = await adminSession(started, "development");
      await call("vane.identity.v1.IdentityService/AddMember", { organizationId: started.organizationId, email: EMAIL, role: "ROLE_EDITOR" }, accessToken);
      const login = cli.start(["login", "--url", started.baseUrl, "--oidc", "--name", "browser"]);
      await login.waitFor(/open (http\S+)/);
      const authorize = new URL(/open (http\S+)/.exec(login.output().stderr)![1]);
      expect(authorize.searchParams.get("code_challenge_method")).toBe("S256");
      expect(authorize.searchParams.get("redirect_uri")).toMatch(/^http:\/\/127\.0\.0\.1:\d+\/callback$/);

      const page = await browser.newPage();
      await page.goto(authorize.href);
      await page.locator("input[name=login]").fill("erin");
      await page.locator("input[name=password]").fill("any");
      await page.getByRole("button", { name: "Sign-in" }).click();
      await page.getByRole("button", { name: "Continue", exact: true }).click();
      await page.getByText("You can close this tab").waitFor();

      const done = await login.exited;
      expect(done.code, done.stderr).toBe(0);
      const me = await cli.run(["whoami", "-o", "json", "--profile", "browser"]);
      expect(me.code, me.stderr).toBe(0);
      expect(JSON.parse(me.stdout)).toMatchObject({ url: started.baseUrl, role: "editor", organizationId: started.organizationId });
    } finally {
      await other.cleanup();
      await noDevice.close();
    }
  }, 120_000);
});
