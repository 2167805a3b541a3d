/**
 * Experiments in the console, in headless Chromium against `npm start`: sign in with the printed
 * link, define a metric (a bad key is refused beside its field), create an experiment from a new
 * flag, start it, send evaluations and conversions through the public API as a backend would, read
 * the results page (the metric, its forest plot, the verdict), then stop and ship a variant; the
 * charts' code is not in the first page's script. Screenshots go to .tmp/console-experiment*.png.
 */
import { mkdirSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { type Browser, chromium, type Page } from "playwright-core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { CHROMIUM_ARGS, CHROMIUM_HINT, findChromium } from "./chromium.ts";
import { adminSession, startVane, type VaneProcess } from "./vane-process.ts";

const shots = fileURLToPath(new URL("../.tmp/", import.meta.url));
const UNITS = 300;
/** Conversion rates by arm: the treatment is clearly better. */
const RATE: Record<string, number> = { control: 0.2, treatment: 0.5 };
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

describe("experiments in the console", () => {
  it("keeps the charts out of the first page's script", async () => {
    const { baseUrl } = await vane.started(60_000);
    const html = await (await fetch(`${baseUrl}/`)).text();
    // The entry script and the chunks it preloads: everything the first page runs.
    const scripts = [...html.matchAll(/(?:src|href)="(\/assets\/[^"]+\.js)"/g)].map((m) => m[1]);
    expect(scripts.length).toBeGreaterThan(0);
    for (const s of scripts) expect(await (await fetch(`${baseUrl}${s}`)).text()).not.toContain("u-legend"); // uPlot comes in a lazy chunk
  });

  it("defines a metric, runs an experiment from a new flag, reads its results, and ships the winner", async () => {
    const started = await vane.started(60_000);
    const link = vane.output().match(/(http:\/\/127\.0\.0\.1:\d+\/#key=vane_personal_[A-Za-z0-9_-]+)/)![1];
    const page = await browser.newPage({ viewport: { width: 1280, height: 900 } });
    const errors: string[] = [];
    page.on("pageerror", (e) => errors.push(e.message));
    page.on("dialog", (d) => void d.accept());
    await page.goto(link);
    await page.getByRole("heading", { name: "Projects" }).waitFor();
    await page.getByRole("link", { name: "Development" }).click();
    await page.getByRole("heading", { name: "Flags" }).waitFor();

    // A metric; a bad key is shown beside its field.
    await page.getByRole("navigation", { name: "Project" }).getByRole("link", { name: "Metrics" }).click();
    await page.getByRole("heading", { name: "Metrics" }).waitFor();
    await page.getByLabel("Key", { exact: true }).fill("bad key!");
    await page.getByLabel("Name", { exact: true }).fill("Purchased");
    await page.getByLabel("Event name").fill("purchase");
    await page.getByRole("button", { name: "Create metric" }).click();
    await page.locator("#metric-key-error").waitFor();
    expect(await page.getByLabel("Key", { exact: true }).getAttribute("aria-invalid")).toBe("true");
    await shot(page, "experiment-metric-error");
    await page.getByLabel("Key", { exact: true }).fill("purchased");
    await page.getByRole("button", { name: "Create metric" }).click();
    await page.getByRole("row", { name: /purchased/ }).waitFor();
    await shot(page, "experiment-metrics");

    // A new string flag (control / treatment), and an experiment from its page.
    await page.getByRole("navigation", { name: "Project" }).getByRole("link", { name: "Flags" }).click();
    await page.getByRole("button", { name: "New flag" }).click();
    await page.getByLabel("Key", { exact: true }).fill("checkout-flow");
    await page.getByLabel("Type", { exact: true }).selectOption("string");
    await page.getByRole("button", { name: "Create flag" }).click();
    await page.getByRole("heading", { name: /checkout-flow/ }).waitFor();
    await page.getByRole("link", { name: "Run an experiment" }).click();
    await page.getByRole("heading", { name: "New experiment" }).waitFor();
    expect(await page.getByLabel("Flag").inputValue()).toBe("checkout-flow");
    await page.getByLabel("Share of treatment (%)").waitFor();
    await page.getByLabel("Share of control (%)").fill("40");
    expect(await page.getByLabel("Share of treatment (%)").inputValue()).toBe("60");
    await page.getByLabel("Share of control (%)").fill("50");
    await page.getByLabel("Key", { exact: true }).fill("one-page-checkout");
    await page.getByLabel("Name", { exact: true }).fill("One-page checkout");
    await page.getByLabel("Hypothesis").fill("One page converts better than three");
    await page.getByLabel("Role of purchased").selectOption("primary");
    await shot(page, "experiment-new");
    await page.getByRole("button", { name: "Create experiment" }).click();
    await page.getByRole("heading", { name: /One-page checkout/ }).waitFor();
    await page.getByRole("button", { name: "Start" }).click();
    await page.getByRole("status").filter({ hasText: "Started." }).waitFor();
    await expect.poll(() => page.getByRole("heading", { name: /One-page checkout/ }).innerText()).toMatch(/running/);

    // Before any data: the warning comes first, and no interval is drawn where none is bounded.
    const warnings = page.getByRole("region", { name: "Warnings" });
    await expect.poll(() => warnings.innerText().catch(() => ""), { timeout: 15_000 }).toMatch(/too little data/);
    expect(await page.getByTestId("metric-purchased").innerText()).not.toContain("NaN");
    await page.getByTestId("metric-purchased").getByText("— no bounded interval yet", { exact: true }).waitFor();
    await shot(page, "experiment-early");

    // A backend evaluates the flag for its users (exposures) and tracks their purchases.
    const { call, accessToken, environmentId } = await adminSession(started, "development");
    const { secret } = await call<{ secret: string }>(
      "vane.identity.v1.IdentityService/CreateApiKey",
      { environmentId, kind: "API_KEY_KIND_SERVER", name: "console test backend" },
      accessToken,
    );
    const { accessToken: server } = await call<{ accessToken: string }>("vane.identity.v1.AuthService/ExchangeApiKey", { apiKey: secret });
    const evaluate = async (unit: string) =>
      (
        await call<{ evaluation: { variant: string; reason: string } }>(
          "vane.evaluation.v1.EvaluationService/Evaluate",
          { flagKey: "checkout-flow", context: { targetingKey: unit } },
          server,
        )
      ).evaluation;
    await expect.poll(async () => (await evaluate("probe")).reason, { timeout: 15_000 }).toBe("REASON_TARGETING_MATCH");
    const assigned = new Map<string, string>([["probe", (await evaluate("probe")).variant]]);
    for (let i = 0; i < UNITS; i += 50)
      await Promise.all(Array.from({ length: 50 }, (_, j) => `customer-${i + j}`).map(async (k) => assigned.set(k, (await evaluate(k)).variant)));
    const buyers = [...assigned].filter(([k, v]) => (Number(k.split("-")[1] ?? 0) * 0.6180339887) % 1 < RATE[v]).map(([k]) => k);
    const tracked = await call<{ rejected?: unknown[] }>(
      "vane.events.v1.EventService/Track",
      { events: buyers.map((unitKey) => ({ name: "purchase", unitKey, value: 1 })) },
      server,
    );
    expect(tracked.rejected ?? []).toEqual([]);

    // The results page, once the pipeline has counted every unit.
    const experimentId = decodeURIComponent(page.url().split("/experiments/")[1]);
    await expect
      .poll(
        async () => {
          const { results } = await call<{ results: { metrics: { variants: { units?: string }[] }[] } }>(
            "vane.experiments.v1.ExperimentService/GetResults",
            { id: experimentId },
            accessToken,
          );
          return results.metrics[0]?.variants.reduce((a, v) => a + Number(v.units ?? 0), 0);
        },
        { timeout: 30_000 },
      )
      .toBe(assigned.size);
    await page.reload();
    const metric = page.getByTestId("metric-purchased");
    await metric.getByRole("img", { name: /Relative lift of purchased/ }).waitFor();
    const text = await metric.innerText();
    expect(text).toContain("primary");
    expect(text).toMatch(/treatment\s+\d+/);
    expect(text).toMatch(/Significantly better than control|Not significant yet/);
    await page.getByTestId("timeline").or(page.getByText("No day has ended with data yet.")).waitFor();
    await shot(page, "experiment-results");

    // Stop and ship the treatment.
    await page.getByLabel("Or stop and serve one variant to everyone").selectOption("treatment");
    await page.getByRole("button", { name: "Stop and ship" }).click();
    await page
      .getByRole("status")
      .filter({ hasText: /treatment ships to everyone/ })
      .waitFor();
    await expect.poll(() => page.getByRole("heading", { name: /One-page checkout/ }).innerText()).toMatch(/stopped/);
    await shot(page, "experiment-stopped");
    const { experiment } = await call<{ experiment: { status: string; shippedVariant: string } }>(
      "vane.experiments.v1.ExperimentService/GetExperiment",
      { id: experimentId },
      accessToken,
    );
    expect(experiment).toMatchObject({ status: "EXPERIMENT_STATUS_STOPPED", shippedVariant: "treatment" });

    // The list shows it stopped with what shipped.
    await page.getByRole("link", { name: "← Experiments" }).click();
    await expect.poll(() => page.getByRole("row", { name: /One-page checkout/ }).innerText()).toMatch(/stopped · shipped treatment/);
    expect(errors).toEqual([]);
  }, 180_000);
});
