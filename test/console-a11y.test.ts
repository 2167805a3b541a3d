/**
 * An accessibility scan of every console page with axe-core, in headless Chromium against
 * `npm start`: no serious or critical violation of WCAG 2.1 A/AA on the projects, flags, flag (with
 * rules and the debugger's result), segments, audit and settings pages, nor on the sign-in page.
 */
import { createRequire } from "node:module";
import type { Result } from "axe-core";
import { type Browser, chromium, type Page } from "playwright-core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { CHROMIUM_ARGS, CHROMIUM_HINT, findChromium } from "./chromium.ts";
import { adminSession, startVane, type VaneProcess } from "./vane-process.ts";

const axeSource = createRequire(import.meta.url)("axe-core").source as string;
let vane: VaneProcess;
let browser: Browser;

beforeAll(async () => {
  vane = startVane();
  const executablePath = findChromium();
  if (!executablePath) throw new Error(`the accessibility test needs Chromium: ${CHROMIUM_HINT}`);
  browser = await chromium.launch({ executablePath, args: CHROMIUM_ARGS, headless: true });
}, 60_000);
afterAll(async () => {
  await browser?.close();
  await vane?.cleanup();
});

/** Serious and critical violations on the page as it is now, each as "rule: where". */
async function scan(page: Page): Promise<string[]> {
  await page.evaluate(axeSource);
  const results = await page.evaluate(() =>
    (globalThis as unknown as { axe: { run(ctx: unknown, opts: unknown): Promise<{ violations: Result[] }> } }).axe.run(
      (globalThis as unknown as { document: unknown }).document,
      {
        runOnly: { type: "tag", values: ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa"] },
      },
    ),
  );
  return results.violations
    .filter((v) => v.impact === "serious" || v.impact === "critical")
    .flatMap((v) => v.nodes.map((n) => `${v.id} (${v.impact}): ${n.target.join(" ")} — ${n.failureSummary?.split("\n")[1]?.trim() ?? v.help}`));
}

describe("the console's accessibility", () => {
  it("has no serious or critical violation on any page", async () => {
    const started = await vane.started(60_000);
    const link = vane.output().match(/(http:\/\/127\.0\.0\.1:\d+\/#key=vane_personal_[A-Za-z0-9_-]+)/)![1];
    const { call, accessToken, projectId, environmentId } = await adminSession(started, "development");
    const variants = [
      { key: "on", value: true },
      { key: "off", value: false },
    ];
    await call(
      "vane.flags.v1.FlagService/CreateFlag",
      { projectId, key: "a11y-flag", name: "A11y flag", type: "FLAG_TYPE_BOOLEAN", variants, tags: ["web"] },
      accessToken,
    );
    await call(
      "vane.flags.v1.FlagService/UpdateFlagEnvironment",
      {
        environmentId,
        flagKey: "a11y-flag",
        expectedVersion: 0,
        enabled: true,
        defaultVariant: "off",
        rules: [{ conditions: [{ attribute: { attribute: "email", operator: "OPERATOR_ENDS_WITH", values: ["@example.com"] } }], outcome: { variant: "on" } }],
      },
      accessToken,
    );
    await call("vane.flags.v1.SegmentService/CreateSegment", { projectId, key: "beta", name: "Beta", includedKeys: ["u1"] }, accessToken);

    // axe is injected by the test: the console's CSP (rightly) allows no script but its own.
    const context = await browser.newContext({ bypassCSP: true });
    const page = await context.newPage();
    const found: Record<string, string[]> = {};
    const check = async (name: string, ready: () => Promise<unknown>) => {
      await ready();
      found[name] = await scan(page);
    };

    await page.goto(started.baseUrl);
    await check("sign-in", () => page.getByRole("button", { name: "Sign in" }).waitFor());
    await page.goto(link);
    await check("projects", () => page.getByRole("heading", { name: "Projects" }).waitFor());
    const base = `${started.baseUrl}/#/p/${projectId}/e/${environmentId}`;
    await page.goto(`${base}/flags`);
    await check("flags", () => page.getByRole("link", { name: "a11y-flag" }).waitFor());
    await page.getByRole("button", { name: "New flag" }).click();
    await check("new flag", () => page.getByRole("heading", { name: "New flag" }).waitFor());
    await page.goto(`${base}/flags/a11y-flag`);
    await page.getByTestId("rule").first().waitFor();
    await page.getByRole("button", { name: "Evaluate" }).click();
    await check("flag", () => page.getByTestId("evaluation").waitFor());
    for (const section of ["segments", "audit", "settings", "metrics"]) {
      await page.goto(`${base}/${section}`);
      await check(section, () => page.getByRole("heading", { level: 1 }).first().waitFor());
    }
    // Experiments: the list with the new-experiment form open, and a running one's results (warnings, charts).
    await call(
      "vane.experiments.v1.ExperimentService/CreateMetric",
      { projectId, key: "clicked", name: "Clicked", eventName: "click", kind: "METRIC_KIND_CONVERSION", direction: "DIRECTION_INCREASE" },
      accessToken,
    );
    const { experiment } = await call<{ experiment: { id: string } }>(
      "vane.experiments.v1.ExperimentService/CreateExperiment",
      {
        projectId,
        environmentId,
        flagKey: "a11y-flag",
        key: "a11y-test",
        name: "A11y test",
        variants: [
          { variant: "off", weight: 50 },
          { variant: "on", weight: 50 },
        ],
        primaryMetricKeys: ["clicked"],
      },
      accessToken,
    );
    await page.goto(`${base}/experiments?flag=a11y-flag`);
    await check("experiments", () => page.getByLabel("Share of on (%)").waitFor());
    await call("vane.experiments.v1.ExperimentService/StartExperiment", { id: experiment.id }, accessToken);
    await page.goto(`${base}/experiments/${experiment.id}`);
    await check("experiment", () => page.getByTestId("metric-clicked").getByRole("img").waitFor());
    expect(found).toEqual(Object.fromEntries(Object.keys(found).map((k) => [k, []])));
    await context.close();
  }, 120_000);
});
