/**
 * The console's project pages in a real headless Chromium against `npm start`: a segment created
 * and edited in the browser and where a flag uses it; an API key whose secret is shown once; the
 * project's audit feed following a change made through the API and reverting it; and a viewer,
 * signed in with their own personal key, seeing no control that changes anything. The viewer
 * gets that key the way a person does: invited by email (AddMember), signed in once through
 * OpenID Connect (a stand-in provider on loopback, the outside world), then CreateApiKey for
 * themselves. Screenshots go to .tmp/console-*.png.
 */
import * as http from "node:http";
import type { AddressInfo } from "node:net";
import { mkdirSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { exportJWK, generateKeyPair, SignJWT } from "jose";
import { type Browser, chromium, type Page } from "playwright-core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { CHROMIUM_ARGS, CHROMIUM_HINT, findChromium } from "./chromium.ts";
import { adminSession, startVane, type VaneProcess } from "./vane-process.ts";

const shots = fileURLToPath(new URL("../.tmp/", import.meta.url));
let vane: VaneProcess;
let browser: Browser;
let provider: http.Server;
let signIdToken: (claims: Record<string, unknown>) => Promise<string>;

/** A stand-in OpenID Connect provider: a discovery document, a JWKS, and ID tokens it signs. */
async function startProvider(): Promise<string> {
  const { privateKey, publicKey } = await generateKeyPair("RS256");
  const jwk = { ...(await exportJWK(publicKey)), kid: "p1", alg: "RS256", use: "sig" };
  let issuer = "";
  provider = http.createServer((req, res) => {
    res.setHeader("content-type", "application/json");
    if (req.url === "/.well-known/openid-configuration") res.end(JSON.stringify({ issuer, jwks_uri: `${issuer}/jwks` }));
    else if (req.url === "/jwks") res.end(JSON.stringify({ keys: [jwk] }));
    else res.writeHead(404).end("{}");
  });
  await new Promise<void>((r) => provider.listen(0, "127.0.0.1", r));
  issuer = `http://127.0.0.1:${(provider.address() as AddressInfo).port}`;
  signIdToken = (claims) =>
    new SignJWT(claims)
      .setProtectedHeader({ alg: "RS256", kid: "p1" })
      .setIssuer(issuer)
      .setAudience("vane-console")
      .setIssuedAt()
      .setExpirationTime("5m")
      .sign(privateKey);
  return issuer;
}

beforeAll(async () => {
  const issuer = await startProvider();
  vane = startVane([], { VANE_OIDC_ISSUER: issuer, VANE_OIDC_AUDIENCE: "vane-console" });
  const executablePath = findChromium();
  if (!executablePath) throw new Error(`the console test needs Chromium: ${CHROMIUM_HINT}`);
  browser = await chromium.launch({ executablePath, args: CHROMIUM_ARGS, headless: true });
  mkdirSync(shots, { recursive: true });
}, 60_000);
afterAll(async () => {
  await browser?.close();
  await vane?.cleanup();
  provider?.close();
});

const shot = (page: Page, name: string) => page.screenshot({ path: `${shots}console-${name}.png`, fullPage: true });
const linkOf = () => vane.output().match(/(http:\/\/127\.0\.0\.1:\d+\/#key=vane_personal_[A-Za-z0-9_-]+)/)![1];
const variants = [
  { key: "on", value: true },
  { key: "off", value: false },
];

/** A page signed in with `link`, on the Development flags of the default project. */
async function signedIn(link: string): Promise<Page> {
  const context = await browser.newContext();
  const page = await context.newPage();
  page.on("dialog", (d) => void d.accept());
  await page.goto(link);
  await page.getByRole("heading", { name: "Projects" }).waitFor();
  await page.getByRole("link", { name: "Development" }).click();
  await page.getByRole("heading", { name: "Flags" }).waitFor();
  return page;
}

const section = (page: Page, name: string) => page.getByRole("navigation", { name: "Project" }).getByRole("link", { name, exact: true }).click();

describe("the console's project pages", () => {
  it("creates and edits a segment, and shows which flags use it", async () => {
    const started = await vane.started(60_000);
    const { call, accessToken, projectId, environmentId } = await adminSession(started, "development");
    const page = await signedIn(linkOf());
    await section(page, "Segments");
    await page.getByRole("heading", { name: "Segments" }).waitFor();
    await page.getByRole("button", { name: "New segment" }).click();
    await page.getByLabel("Key", { exact: true }).fill("beta-testers");
    await page.getByLabel("Name", { exact: true }).fill("Beta testers");
    await page.getByRole("button", { name: "Add a condition" }).click();
    await page.getByLabel("Attribute 1").fill("email");
    await page.getByLabel("Operator 1").selectOption({ label: "ends with" });
    await page.getByLabel("Values 1").fill("@example.com");
    await page.getByRole("button", { name: "Create segment" }).click();
    const row = page.getByRole("row", { name: /beta-testers/ });
    await expect.poll(() => row.innerText()).toMatch(/email ends with @example\.com[\s\S]*unused/);

    // A flag's Development rules use it (through the API): the list says where.
    await call(
      "vane.flags.v1.FlagService/CreateFlag",
      { projectId, key: "beta-banner", name: "Beta banner", type: "FLAG_TYPE_BOOLEAN", variants },
      accessToken,
    );
    await call(
      "vane.flags.v1.FlagService/UpdateFlagEnvironment",
      {
        environmentId,
        flagKey: "beta-banner",
        expectedVersion: 0,
        enabled: true,
        defaultVariant: "off",
        rules: [{ conditions: [{ segment: { segmentKey: "beta-testers" } }], outcome: { variant: "on" } }],
      },
      accessToken,
    );
    await expect.poll(() => row.innerText(), { timeout: 15_000 }).toMatch(/beta-banner in Development/);

    // Edit it: a second condition and an always-member.
    await row.getByRole("button", { name: "Edit beta-testers" }).click();
    await page.getByRole("button", { name: "Add a condition" }).click();
    await page.getByLabel("Attribute 2").fill("plan");
    await page.getByLabel("Operator 2").selectOption({ label: "in" });
    await page.getByLabel("Values 2").fill("pro, team");
    await page.getByLabel(/Always members/).fill("user-7\nuser-9");
    await shot(page, "segment-edit");
    await page.getByRole("button", { name: "Save segment" }).click();
    await page.getByRole("status").filter({ hasText: "Saved beta-testers." }).waitFor();
    await expect.poll(() => row.innerText()).toMatch(/plan in pro, team[\s\S]*always: user-7, user-9/);
    await shot(page, "segments");
    const got = await call<{
      segment: { version: string; includedKeys: string[]; conditions: { attribute: { attribute: string; operator: string; values: unknown[] } }[] };
      usedBy: { flagKey: string; environmentIds: string[] }[];
    }>("vane.flags.v1.SegmentService/GetSegment", { projectId, key: "beta-testers" }, accessToken);
    expect(got.segment.version).toBe("2");
    expect(got.segment.includedKeys).toEqual(["user-7", "user-9"]);
    expect(got.segment.conditions.map((c) => c.attribute)).toEqual([
      { attribute: "email", operator: "OPERATOR_ENDS_WITH", values: ["@example.com"] },
      { attribute: "plan", operator: "OPERATOR_IN", values: ["pro", "team"] },
    ]);
    expect(got.usedBy).toEqual([{ flagKey: "beta-banner", environmentIds: [environmentId] }]);
    await page.context().close();
  }, 120_000);

  it("edits a segment without changing what the form does not edit, and refuses a number that is not one", async () => {
    const started = await vane.started(60_000);
    const { call, accessToken, projectId } = await adminSession(started, "development");
    const beta = { attribute: { attribute: "beta", operator: "OPERATOR_EQUALS", values: [true] } };
    const pattern = { attribute: { attribute: "email", operator: "OPERATOR_MATCHES", values: ["^a{1,3}@", "i"] } };
    await call("vane.flags.v1.SegmentService/CreateSegment", { projectId, key: "early", name: "Early", conditions: [beta, pattern] }, accessToken);
    const page = await signedIn(linkOf());
    await section(page, "Segments");
    const row = page.getByRole("row", { name: /early/ });
    await expect.poll(() => row.innerText()).toMatch(/beta equals true[\s\S]*email matches \^a\{1,3\}@, i/);
    await row.getByRole("button", { name: "Edit early" }).click();
    await page.getByText("1 other condition(s)").waitFor(); // the pattern with flags is kept, not shown as a text box
    await page.getByRole("button", { name: "Add a condition" }).click();
    await page.getByLabel("Attribute 2").fill("age");
    await page.getByLabel("Operator 2").selectOption({ label: "greater than" });
    await page.getByLabel("Values 2").fill("eighteen");
    await page.getByLabel(/Never members/).fill("bob");
    await page.getByRole("button", { name: "Save segment" }).click();
    await expect.poll(() => page.getByRole("alert").innerText()).toContain('"eighteen" is not a number');
    await page.getByLabel("Values 2").fill("18");
    await page.getByRole("button", { name: "Save segment" }).click();
    await page.getByRole("status").filter({ hasText: "Saved early." }).waitFor();
    const got = await call<{ segment: { excludedKeys: string[]; conditions: unknown[] } }>(
      "vane.flags.v1.SegmentService/GetSegment",
      { projectId, key: "early" },
      accessToken,
    );
    expect(got.segment.excludedKeys).toEqual(["bob"]);
    expect(got.segment.conditions).toEqual([beta, { attribute: { attribute: "age", operator: "OPERATOR_GREATER_THAN", values: [18] } }, pattern]);
    await page.context().close();
  }, 120_000);

  it("creates an API key and shows its secret once", async () => {
    const started = await vane.started(60_000);
    const { call, accessToken, environmentId } = await adminSession(started, "development");
    const page = await signedIn(linkOf());
    await section(page, "Settings");
    await page.getByRole("heading", { name: "API keys" }).waitFor();
    await page.getByLabel("Key name").fill("checkout backend");
    await page.getByLabel("Key kind").selectOption({ label: "server: evaluate every flag" });
    await page.getByRole("button", { name: "Create key" }).click();
    const secret = (await page.getByTestId("new-secret").innerText()).trim();
    expect(secret).toMatch(/^vane_server_[A-Za-z0-9_-]{40,}$/);
    await shot(page, "api-key-secret");

    // The key is listed by its prefix; the API has it, and the secret works.
    const { apiKeys } = await call<{ apiKeys: { name: string; prefix: string }[] }>(
      "vane.identity.v1.IdentityService/ListApiKeys",
      { environmentId },
      accessToken,
    );
    const listed = apiKeys.find((k) => k.name === "checkout backend");
    expect(secret.startsWith(listed!.prefix)).toBe(true);
    await expect.poll(() => page.getByRole("row", { name: /checkout backend/ }).innerText()).toContain(listed!.prefix);

    // Dismissed, it is gone for good: not on the page, not after a reload.
    await page.getByRole("button", { name: "I have stored it" }).click();
    await page.getByRole("button", { name: "Create key" }).waitFor();
    expect(await page.content()).not.toContain(secret);
    await page.reload();
    await page.getByRole("row", { name: /checkout backend/ }).waitFor();
    expect(await page.content()).not.toContain(secret);
    await shot(page, "settings");
    await page.context().close();
  }, 120_000);

  it("creates an environment, adds a member, changes their role and removes them, and revokes a key", async () => {
    const started = await vane.started(60_000);
    const { call, accessToken, projectId } = await adminSession(started, "development");
    const page = await signedIn(linkOf());
    await section(page, "Settings");
    await page.getByLabel("Environment key").fill("qa");
    await page.getByLabel("Environment name").fill("QA");
    await page.getByRole("button", { name: "Create environment" }).click();
    await page.getByRole("status").filter({ hasText: "Created qa." }).waitFor();
    const { environments } = await call<{ environments: { key: string; protected?: boolean }[] }>(
      "vane.identity.v1.IdentityService/ListEnvironments",
      { projectId },
      accessToken,
    );
    expect(environments.find((e) => e.key === "qa")).toMatchObject({ key: "qa" });
    expect(environments.find((e) => e.key === "qa")!.protected ?? false).toBe(false);

    await page.getByLabel("Member email").fill("eve@example.com");
    await page.getByLabel("Member role").selectOption({ label: "editor" });
    await page.getByRole("button", { name: "Add member" }).click();
    const eve = page.getByRole("row", { name: /eve@example\.com/ });
    await eve.waitFor();
    await eve.getByLabel("Role of eve@example.com").selectOption({ label: "admin" });
    await page.getByRole("status").filter({ hasText: "eve@example.com's role changed." }).waitFor();
    const roleOfEve = async () =>
      (
        await call<{ members: { email: string; role: string }[] }>(
          "vane.identity.v1.IdentityService/ListMembers",
          { organizationId: started.organizationId },
          accessToken,
        )
      ).members.find((m) => m.email === "eve@example.com")?.role;
    expect(await roleOfEve()).toBe("ROLE_ADMIN");
    await eve.getByRole("button", { name: "Remove eve@example.com" }).click();
    await page.getByRole("status").filter({ hasText: "Removed eve@example.com." }).waitFor();
    expect(await roleOfEve()).toBeUndefined();

    // The key made by the test before: revoked, it leaves the list (ListApiKeys leaves revoked keys out).
    const backend = page.getByRole("row", { name: /checkout backend/ });
    await backend.getByRole("button", { name: "Revoke checkout backend" }).click();
    await page.getByRole("status").filter({ hasText: "Revoked checkout backend." }).waitFor();
    await expect.poll(() => backend.count()).toBe(0);
    await page.context().close();
  }, 120_000);

  it("follows a change made through the API in the project's audit feed, and reverts it", async () => {
    const started = await vane.started(60_000);
    const { call, accessToken, projectId, environmentId } = await adminSession(started, "development");
    await call(
      "vane.flags.v1.FlagService/CreateFlag",
      { projectId, key: "audit-banner", name: "Audit banner", type: "FLAG_TYPE_BOOLEAN", variants },
      accessToken,
    );
    await call(
      "vane.flags.v1.FlagService/UpdateFlagEnvironment",
      { environmentId, flagKey: "audit-banner", expectedVersion: 0, enabled: false, defaultVariant: "off" },
      accessToken,
    );
    const page = await signedIn(linkOf());
    await section(page, "Audit");
    await page.getByRole("heading", { name: "Audit log" }).waitFor();
    const newest = page.getByTestId("audit-entry").first();
    await expect.poll(() => newest.innerText()).toMatch(/audit-banner/);

    // Someone turns it on through the API: the open feed shows it, no reload.
    await call(
      "vane.flags.v1.FlagService/UpdateFlagEnvironment",
      { environmentId, flagKey: "audit-banner", expectedVersion: 1, enabled: true, defaultVariant: "on", reason: "launch" },
      accessToken,
    );
    await expect.poll(() => newest.innerText(), { timeout: 15_000 }).toMatch(/audit-banner in Development[\s\S]*“launch”[\s\S]*enabled: false → true/);
    await shot(page, "audit");
    await newest.getByRole("button", { name: "Revert" }).click();
    await page
      .getByRole("status")
      .filter({ hasText: /Reverted entry/ })
      .waitFor();
    await expect.poll(() => newest.innerText()).toMatch(/flag\.environment\.revert of audit-banner[\s\S]*enabled: true → false/);
    const got = await call<{ environments: { environmentId: string; enabled?: boolean; defaultVariant: string }[] }>(
      "vane.flags.v1.FlagService/GetFlag",
      { projectId, key: "audit-banner" },
      accessToken,
    );
    const env = got.environments.find((e) => e.environmentId === environmentId)!;
    expect(env.enabled ?? false).toBe(false); // proto3 JSON leaves out false
    expect(env.defaultVariant).toBe("off");
    await page.context().close();
  }, 120_000);

  it("shows a viewer every page without a control that changes something", async () => {
    const started = await vane.started(60_000);
    const { call, accessToken, projectId, environmentId } = await adminSession(started, "development");
    await call(
      "vane.identity.v1.IdentityService/AddMember",
      { organizationId: started.organizationId, email: "vic@example.com", role: "ROLE_VIEWER" },
      accessToken,
    );
    const session = await call<{ accessToken: string }>("vane.identity.v1.AuthService/ExchangeOidcToken", {
      idToken: await signIdToken({ sub: "vic", email: "vic@example.com", email_verified: true }),
    });
    const { secret } = await call<{ secret: string }>(
      "vane.identity.v1.IdentityService/CreateApiKey",
      { kind: "API_KEY_KIND_PERSONAL", name: "vic's console" },
      session.accessToken,
    );
    await call("vane.flags.v1.SegmentService/CreateSegment", { projectId, key: "staff", name: "Staff", includedKeys: ["ann"] }, accessToken);
    await call(
      "vane.flags.v1.FlagService/CreateFlag",
      { projectId, key: "viewer-banner", name: "Viewer banner", type: "FLAG_TYPE_BOOLEAN", variants },
      accessToken,
    );
    await call(
      "vane.flags.v1.FlagService/UpdateFlagEnvironment",
      { environmentId, flagKey: "viewer-banner", expectedVersion: 0, enabled: true, defaultVariant: "on", reason: "for the viewer" },
      accessToken,
    );

    const page = await signedIn(`${started.baseUrl}/#key=${secret}`);
    await page.getByText("read-only (viewer)").waitFor();
    const row = page.getByRole("row", { name: /viewer-banner/ });
    await row.waitFor();
    // Every list has loaded before "no such button" is asserted, so absence is not just "not yet".
    expect(await page.getByRole("button", { name: "New flag" }).count()).toBe(0);

    await row.getByRole("link", { name: "viewer-banner" }).click();
    await page.getByTestId("audit-entry").first().waitFor();
    expect(await page.getByRole("checkbox").isDisabled()).toBe(true);
    expect(await page.getByLabel("Default variant").isDisabled()).toBe(true);
    for (const name of ["Review changes", "Add a percentage rollout", "Revert", "Archive", "Restore"])
      expect(await page.getByRole("button", { name }).count(), name).toBe(0);
    await page.getByRole("button", { name: "Evaluate" }).waitFor(); // reading stays possible
    await shot(page, "viewer-flag");

    await section(page, "Audit");
    await expect.poll(() => page.getByTestId("audit-entry").first().innerText()).toMatch(/viewer-banner/);
    expect(await page.getByRole("button", { name: "Revert" }).count()).toBe(0);

    await section(page, "Segments");
    await page.getByRole("heading", { name: "Segments" }).waitFor();
    await page.getByRole("row", { name: /staff/ }).waitFor();
    expect(await page.getByRole("button", { name: /New segment|Edit|Delete/ }).count()).toBe(0);

    await section(page, "Settings");
    await page.getByRole("row", { name: /vic@example\.com/ }).waitFor();
    await page.getByRole("row", { name: /vic's console/ }).waitFor();
    for (const name of ["Create environment", "Add member", "Rename", /^Remove/, "Create key", /^Revoke/])
      expect(await page.getByRole("button", { name }).count(), String(name)).toBe(0);
    expect(await page.getByRole("combobox", { name: /Role of/ }).count()).toBe(0);
    await shot(page, "viewer-settings");
    await page.context().close();
  }, 120_000);
});
