/**
 * The console in a real headless Chromium against `npm start`: the printed one-click link signs in,
 * a flag is created, turned on with a 25% rollout after reviewing the change, checked in the
 * debugger (the rule that matched), and the change is what the API reads back; the page is served
 * with its security headers. Screenshots of each page go to .tmp/console-*.png.
 */
import { mkdirSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { type Browser, chromium, type Page } from "playwright-core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { CHROMIUM_ARGS, CHROMIUM_HINT, findChromium } from "./chromium.ts";
import { adminSession, startVane, type VaneProcess } from "./vane-process.ts";

const shots = fileURLToPath(new URL("../.tmp/", import.meta.url));
let vane: VaneProcess;
let browser: Browser;

beforeAll(async () => {
  vane = startVane();
  const executablePath = findChromium();
  if (!executablePath) throw new Error(`the console test needs Chromium: ${CHROMIUM_HINT}`);
  browser = await chromium.launch({ executablePath, args: CHROMIUM_ARGS, headless: true });
  mkdirSync(shots, { recursive: true });
}, 60_000);
afterAll(async () => {
  await browser?.close();
  await vane?.cleanup();
});

const shot = (page: Page, name: string) => page.screenshot({ path: `${shots}console-${name}.png`, fullPage: true });

describe("the console", () => {
  it("is served at / with its security headers and no inline script", async () => {
    const { baseUrl } = await vane.started(60_000);
    const res = await fetch(`${baseUrl}/`);
    expect(res.status).toBe(200);
    expect(res.headers.get("content-security-policy")).toMatch(/script-src 'self'; .*frame-ancestors 'none'/);
    expect(res.headers.get("x-content-type-options")).toBe("nosniff");
    expect(res.headers.get("cache-control")).toBe("no-cache");
    const html = await res.text();
    expect(html).not.toMatch(/<script>(?!<\/script>)/);
    const asset = /src="(\/assets\/[^"]+\.js)"/.exec(html)![1];
    const js = await fetch(`${baseUrl}${asset}`);
    expect(js.headers.get("cache-control")).toMatch(/immutable/);
    expect(js.headers.get("content-type")).toMatch(/javascript/);
  });

  it("signs in with the printed link, creates a flag, rolls it out to 25% after a review, and explains an evaluation", async () => {
    const started = await vane.started(60_000);
    const link = vane.output().match(/(http:\/\/127\.0\.0\.1:\d+\/#key=vane_personal_[A-Za-z0-9_-]+)/)?.[1];
    expect(link, "npm start prints a one-click sign-in link").toBeDefined();
    const page = await browser.newPage();
    const errors: string[] = [];
    page.on("pageerror", (e) => errors.push(e.message));
    await page.goto(link!);
    await page.getByRole("heading", { name: "Projects" }).waitFor();
    expect(page.url()).not.toContain("vane_personal_"); // the key left the address bar
    await shot(page, "projects");

    await page.getByRole("link", { name: "Development" }).click();
    await page.getByRole("heading", { name: "Flags" }).waitFor();
    await page.getByRole("button", { name: "New flag" }).click();
    await page.getByLabel("Key", { exact: true }).fill("new-checkout");
    await page.getByLabel("Name").fill("New checkout");
    await page.getByRole("button", { name: "Create flag" }).click();
    await page.getByRole("heading", { name: /new-checkout/ }).waitFor();

    await page.getByRole("checkbox").check();
    await page.getByLabel("Default variant").selectOption("off");
    await page.getByRole("button", { name: "Add a percentage rollout" }).click();
    await page.getByLabel("Share of on (%)").fill("25");
    expect(await page.getByLabel("Share of off (%)").inputValue()).toBe("75");
    await page.getByRole("button", { name: "Review changes" }).click();
    const review = page.getByRole("dialog", { name: "Changes to save" });
    await expect.poll(() => review.innerText()).toContain("Turn the flag ON");
    expect(await review.innerText()).toContain("Add rule 1: everyone → on 25%, off 75%");
    await shot(page, "flag-review");
    await review.getByRole("button", { name: "Save" }).click();
    await page.getByRole("status").filter({ hasText: "Saved." }).waitFor();

    // What the API now holds.
    const { call, accessToken, projectId, environmentId } = await adminSession(started, "development");
    const got = await call<{
      environments: { environmentId: string; enabled: boolean; rules: { outcome: { rollout: { variants: { variant: string; weight: number }[] } } }[] }[];
    }>("vane.flags.v1.FlagService/GetFlag", { projectId, key: "new-checkout" }, accessToken);
    const env = got.environments.find((e) => e.environmentId === environmentId)!;
    expect(env.enabled).toBe(true);
    expect(env.rules[0].outcome.rollout.variants).toEqual([
      { variant: "on", weight: 25 },
      { variant: "off", weight: 75 },
    ]);

    // The debugger, once the evaluator has the new version.
    await expect
      .poll(
        async () => {
          await page.getByRole("button", { name: "Evaluate" }).click();
          return page
            .getByTestId("evaluation")
            .innerText()
            .catch(() => "");
        },
        { timeout: 15_000 },
      )
      .toMatch(/TARGETING_MATCH/);
    await shot(page, "flag-debugger");
    expect(await page.getByTestId("evaluation").innerText()).toMatch(/Why\s+.*(rule|rollout)/i);

    // The list shows the flag on in Development.
    await page.getByRole("link", { name: "← Flags" }).click();
    const row = page.getByRole("row", { name: /new-checkout/ });
    await expect.poll(() => row.innerText()).toMatch(/on · 1 rule/);
    await shot(page, "flags");
    expect(errors).toEqual([]);
  }, 120_000);

  it("shows another person's change without a reload, and reverts it from the history after a confirmation", async () => {
    const started = await vane.started(60_000);
    const link = vane.output().match(/(http:\/\/127\.0\.0\.1:\d+\/#key=vane_personal_[A-Za-z0-9_-]+)/)![1];
    const { call, accessToken, projectId, environmentId } = await adminSession(started, "development");
    const variants = [
      { key: "on", value: true },
      { key: "off", value: false },
    ];
    await call(
      "vane.flags.v1.FlagService/CreateFlag",
      { projectId, key: "live-banner", name: "Live banner", type: "FLAG_TYPE_BOOLEAN", variants },
      accessToken,
    );
    await call(
      "vane.flags.v1.FlagService/UpdateFlagEnvironment",
      { environmentId, flagKey: "live-banner", expectedVersion: 0, enabled: false, defaultVariant: "off" },
      accessToken,
    );

    // A second person's browser, on the flags list.
    const context = await browser.newContext();
    const page = await context.newPage();
    page.on("dialog", (d) => void d.accept());
    await page.goto(link);
    await page.getByRole("heading", { name: "Projects" }).waitFor();
    await page.getByRole("link", { name: "Development" }).click();
    const row = page.getByRole("row", { name: /live-banner/ });
    await expect.poll(() => row.innerText()).toMatch(/live-banner/);
    const developmentColumn = async () =>
      (
        await row
          .locator("td")
          .nth(2 + ["Development", "Production", "Staging"].indexOf("Development"))
          .innerText()
      ).trim();
    expect(await developmentColumn()).toBe("off");

    // Someone else turns it on through the API: the open page follows, no reload.
    await call(
      "vane.flags.v1.FlagService/UpdateFlagEnvironment",
      { environmentId, flagKey: "live-banner", expectedVersion: 1, enabled: true, defaultVariant: "on", reason: "launch" },
      accessToken,
    );
    await expect.poll(developmentColumn, { timeout: 15_000 }).toBe("on");
    await shot(page, "live");

    // The history names the change; revert it.
    await row.getByRole("link", { name: "live-banner" }).click();
    const entry = page.getByTestId("audit-entry").first();
    await expect.poll(() => entry.innerText()).toMatch(/enabled: false → true/);
    await shot(page, "history");
    await entry.getByRole("button", { name: "Revert" }).click();
    await page
      .getByRole("status")
      .filter({ hasText: /Reverted entry/ })
      .waitFor();
    await expect.poll(() => page.getByRole("checkbox").isChecked()).toBe(false);
    const got = await call<{ environments: { environmentId: string; enabled: boolean }[] }>(
      "vane.flags.v1.FlagService/GetFlag",
      { projectId, key: "live-banner" },
      accessToken,
    );
    const reverted = got.environments.find((e) => e.environmentId === environmentId);
    expect(reverted).toBeDefined();
    expect(reverted!.enabled ?? false).toBe(false); // proto3 JSON leaves out false
    await context.close();
  }, 120_000);

  it("edits ordered targeting rules: a condition, a problem shown at its field, a reorder, the flagd view, and the rule the debugger names", async () => {
    const started = await vane.started(60_000);
    const link = vane.output().match(/(http:\/\/127\.0\.0\.1:\d+\/#key=vane_personal_[A-Za-z0-9_-]+)/)![1];
    const { call, accessToken, projectId, environmentId } = await adminSession(started, "development");
    const variants = [
      { key: "on", value: true },
      { key: "off", value: false },
    ];
    await call(
      "vane.flags.v1.FlagService/CreateFlag",
      { projectId, key: "staff-preview", name: "Staff preview", type: "FLAG_TYPE_BOOLEAN", variants },
      accessToken,
    );
    const page = await browser.newPage();
    const errors: string[] = [];
    page.on("pageerror", (e) => errors.push(e.message));
    await page.goto(link);
    await page.getByRole("heading", { name: "Projects" }).waitFor();
    await page.goto(`${started.baseUrl}/#/p/${projectId}/e/${environmentId}/flags/staff-preview`);
    await page.getByRole("heading", { name: /staff-preview/ }).waitFor();

    await page.getByRole("checkbox").first().check();
    await page.getByLabel("Default variant").selectOption("off");
    // Rule 1: staff get "on". Left without an attribute first: the problem shows at the field.
    await page.getByRole("button", { name: "+ Add a rule" }).click();
    await page.getByLabel("Condition 1.1 operator").selectOption({ label: "ends with" });
    await page.getByLabel("Condition 1.1 values").fill("@example.com");
    await page.getByLabel("Rule 1 variant").selectOption("on");
    await page.getByRole("button", { name: "Review changes" }).click();
    await expect.poll(() => page.getByTestId("rule").first().innerText()).toContain("name the attribute, e.g. email or plan");
    await shot(page, "rules-problem");
    await page.getByLabel("Condition 1.1 attribute").fill("email");
    // Rule 2: a 50% rollout for everyone else, added at the top, then moved below the staff rule.
    await page.getByRole("button", { name: "Add a percentage rollout" }).click();
    expect(await page.getByTestId("rule").first().innerText()).toContain("Everyone");
    await page.getByRole("button", { name: "Move rule 1 down" }).click();
    expect(await page.getByTestId("rule").nth(1).innerText()).toContain("Everyone");
    await page.getByRole("button", { name: "Review changes" }).click();
    const review = page.getByRole("dialog", { name: "Changes to save" });
    await expect.poll(() => review.innerText()).toContain("Add rule 1: if email ends with @example.com → on");
    expect(await review.innerText()).toContain("Add rule 2: everyone → on 50%, off 50%");
    await shot(page, "rules-review");
    await review.getByRole("button", { name: "Save" }).click();
    await page.getByRole("status").filter({ hasText: "Saved." }).waitFor();

    // What the API holds, in order.
    const got = await call<{ environments: { environmentId: string; rules: { conditions?: unknown[]; outcome: Record<string, unknown> }[] }[] }>(
      "vane.flags.v1.FlagService/GetFlag",
      { projectId, key: "staff-preview" },
      accessToken,
    );
    const rules = got.environments.find((e) => e.environmentId === environmentId)!.rules;
    expect(rules[0]).toMatchObject({
      conditions: [{ attribute: { attribute: "email", operator: "OPERATOR_ENDS_WITH", values: ["@example.com"] } }],
      outcome: { variant: "on" },
    });
    expect(rules[1].outcome).toEqual({
      rollout: {
        variants: [
          { variant: "on", weight: 50 },
          { variant: "off", weight: 50 },
        ],
      },
    });

    // The saved rules as flagd JSON Logic.
    await page.getByText(/As flagd JSON Logic/).click();
    await expect
      .poll(
        () =>
          page
            .getByTestId("flagd-json")
            .innerText()
            .catch(() => ""),
        { timeout: 10_000 },
      )
      .toContain("ends_with");
    expect(await page.getByTestId("flagd-json").innerText()).toContain("fractional");
    await shot(page, "rules");

    // The debugger names the staff rule for a staff address.
    await page.getByLabel("Evaluation context (JSON)").fill('{"targetingKey": "u1", "email": "ann@example.com"}');
    await expect
      .poll(
        async () => {
          await page.getByRole("button", { name: "Evaluate" }).click();
          return page
            .getByTestId("evaluation")
            .innerText()
            .catch(() => "");
        },
        { timeout: 15_000 },
      )
      .toMatch(/Value\s+true[\s\S]*TARGETING_MATCH[\s\S]*rule 1/i);
    expect(errors).toEqual([]);
  }, 120_000);

  it("creates a typed flag with its values checked, and filters the list by type, state, tag and archived, in the address", async () => {
    const started = await vane.started(60_000);
    const link = vane.output().match(/(http:\/\/127\.0\.0\.1:\d+\/#key=vane_personal_[A-Za-z0-9_-]+)/)![1];
    const { call, accessToken, projectId, environmentId } = await adminSession(started, "development");
    const bool = [
      { key: "on", value: true },
      { key: "off", value: false },
    ];
    await call(
      "vane.flags.v1.FlagService/CreateFlag",
      { projectId, key: "old-banner", name: "Old banner", type: "FLAG_TYPE_BOOLEAN", variants: bool, tags: ["web"] },
      accessToken,
    );
    await call("vane.flags.v1.FlagService/ArchiveFlag", { projectId, key: "old-banner", expectedVersion: 1 }, accessToken);
    const page = await browser.newPage();
    const errors: string[] = [];
    page.on("pageerror", (e) => errors.push(e.message));
    await page.goto(link);
    await page.getByRole("heading", { name: "Projects" }).waitFor();
    await page.goto(`${started.baseUrl}/#/p/${projectId}/e/${environmentId}/flags`);
    await page.getByRole("heading", { name: "Flags" }).waitFor();

    // An object flag: a value that is not JSON is named at its row; nothing is sent until fixed.
    await page.getByRole("button", { name: "New flag" }).click();
    await page.getByLabel("Key", { exact: true }).fill("checkout-layout");
    await page.getByLabel("Type", { exact: true }).selectOption("object");
    await page.getByLabel("Variant 2 value").fill('{"layout": grid}');
    await page.getByRole("button", { name: "Create flag" }).click();
    await expect.poll(() => page.locator(".variant-row").nth(1).innerText()).toMatch(/not JSON/);
    await shot(page, "new-flag-problem");
    await page.getByLabel("Variant 2 value").fill('{"layout": "grid", "columns": 3}');
    await page.getByRole("button", { name: "Create flag" }).click();
    await page.getByRole("heading", { name: /checkout-layout/ }).waitFor();
    const got = await call<{ flag: { type: string; variants: { key: string; value: unknown }[] } }>(
      "vane.flags.v1.FlagService/GetFlag",
      { projectId, key: "checkout-layout" },
      accessToken,
    );
    expect(got.flag.type).toBe("FLAG_TYPE_OBJECT");
    expect(got.flag.variants).toEqual([
      { key: "default", value: {} },
      { key: "new", value: { layout: "grid", columns: 3 } },
    ]);

    // Archive and restore it from its page (behind a confirmation).
    page.on("dialog", (d) => void d.accept());
    await page.getByRole("button", { name: "Archive" }).click();
    await page.getByRole("status").filter({ hasText: "Archived." }).waitFor();
    await page.getByRole("heading", { name: /checkout-layout\s+archived/ }).waitFor();
    await page.getByRole("button", { name: "Restore" }).click();
    await page.getByRole("status").filter({ hasText: "Restored." }).waitFor();

    // Filters live in the address: reload it and the list is still filtered.
    await page.getByRole("link", { name: "← Flags" }).click();
    await page.getByLabel("Filter by type").selectOption("object");
    await expect.poll(() => page.url()).toContain("type=object");
    await expect.poll(() => page.locator("table.flags tbody tr").allInnerTexts()).toEqual([expect.stringContaining("checkout-layout")]);
    await page.reload();
    await expect.poll(() => page.locator("table.flags tbody tr").allInnerTexts()).toEqual([expect.stringContaining("checkout-layout")]);
    await page.getByRole("button", { name: "Clear filters" }).click();
    await page.getByLabel("Filter archived").selectOption("only");
    await expect.poll(() => page.locator("table.flags tbody tr").allInnerTexts()).toEqual([expect.stringMatching(/old-banner[\s\S]*archived[\s\S]*web/)]);
    await page.getByLabel("Filter by tag").fill("mobile");
    await page.getByLabel("Filter by tag").press("Enter");
    await page.getByText("No flag matches the search and filters.").waitFor();
    await page.getByRole("button", { name: "Clear filters" }).click();
    await page.getByLabel("Filter by state in this environment").selectOption("off");
    await expect.poll(() => page.locator("table.flags tbody tr").allInnerTexts()).toContainEqual(expect.stringContaining("checkout-layout"));
    await page.getByLabel("Filter by state in this environment").selectOption("on");
    await expect.poll(async () => (await page.locator("table.flags tbody tr").allInnerTexts()).some((t) => t.includes("checkout-layout"))).toBe(false);
    await shot(page, "flags-filtered");
    expect(errors).toEqual([]);
  }, 120_000);

  it("says what is wrong with a bad key instead of signing in", async () => {
    const { baseUrl } = await vane.started(60_000);
    const page = await browser.newPage();
    await page.goto(`${baseUrl}/#key=vane_personal_${"x".repeat(30)}`);
    await expect
      .poll(() =>
        page
          .getByRole("alert")
          .innerText()
          .catch(() => ""),
      )
      .toMatch(/sign-in link did not work/);
    await shot(page, "signin-error");
  });
});
