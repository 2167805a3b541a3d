/**
 * The console's budgets, each beside its reference in the same run (`npm run bench:console`):
 *   1. JavaScript and CSS the first page loads, gzipped, against the 250 KB budget;
 *   2. navigation → a usable flag list (its first row drawn) in headless Chromium, for a project
 *      of FLAGS flags (default 10,000), against the same ListFlags call made by Node alone;
 *   3. a change made through the API → the open list showing it (no reload), against the same
 *      change reaching a WatchChanges stream read by Node alone.
 * Each timing is taken RUNS times (default 9): min / median / max, the median as the headline.
 */
import { readFileSync } from "node:fs";
import * as os from "node:os";
import { gzipSync } from "node:zlib";
import { fileURLToPath } from "node:url";
import { createClient } from "@connectrpc/connect";
import { createConnectTransport } from "@connectrpc/connect-node";
import { chromium } from "playwright-core";
import { ChangeService } from "#gen/vane/flags/v1/change_service_pb.js";
import { CHROMIUM_ARGS, findChromium } from "../../test/chromium.ts";
import { adminSession, startVane } from "../../test/vane-process.ts";

const FLAGS = Number(process.env.FLAGS ?? 10_000);
const RUNS = Number(process.env.RUNS ?? 9);
const BUDGET_KB = 250;
const dist = fileURLToPath(new URL("../../console/dist/", import.meta.url));

const stats = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  return { min: s[0], median: s[Math.floor(s.length / 2)], max: s.at(-1)! };
};
const fmt = (xs: number[]) => {
  const { min, median, max } = stats(xs);
  return `${min.toFixed(0)} / **${median.toFixed(0)}** / ${max.toFixed(0)} ms`;
};

console.log(
  `machine: ${os.cpus().length} × ${os.cpus()[0].model}, ${Math.round(os.totalmem() / 2 ** 30)} GiB, Node ${process.version}, load ${os.loadavg()[0].toFixed(1)}`,
);
const vane = startVane();
const browser = await chromium.launch({ executablePath: findChromium(), args: CHROMIUM_ARGS, headless: true });
try {
  const started = await vane.started(120_000);
  const link = vane.output().match(/(http:\/\/127\.0\.0\.1:\d+\/#key=vane_personal_[A-Za-z0-9_-]+)/)![1];

  // 1. What the first page loads (the console is built by npm start when stale).
  const html = readFileSync(`${dist}index.html`, "utf8");
  const assets = [...html.matchAll(/(?:src|href)="\/(assets\/[^"]+\.(?:js|css))"/g)].map((m) => m[1]);
  const gz = assets.reduce((n, a) => n + gzipSync(readFileSync(`${dist}${a}`)).length, 0) / 1024;
  const raw = assets.reduce((n, a) => n + readFileSync(`${dist}${a}`).length, 0) / 1024;

  // A project with FLAGS flags, imported into development 2,000 at a time (one import of 10,000
  // takes longer than the default 30 s deadline on a busy machine).
  const { call, accessToken, projectId, environmentId } = await adminSession(started, "development");
  const t0 = performance.now();
  for (let from = 0; from < FLAGS; from += 2_000) {
    const flags: Record<string, unknown> = {};
    for (let i = from; i < Math.min(FLAGS, from + 2_000); i++)
      flags[`flag-${String(i).padStart(5, "0")}`] = { state: "ENABLED", variants: { on: true, off: false }, defaultVariant: "off" };
    await call("vane.flags.v1.FlagService/ImportFlagd", { environmentId, flagdJson: JSON.stringify({ flags }) }, accessToken);
  }
  console.log(`imported ${FLAGS} flags in ${((performance.now() - t0) / 1000).toFixed(1)} s`);

  // 2. Navigation → the first row, against ListFlags alone.
  const page = await browser.newPage();
  await page.goto(link);
  await page.getByRole("heading", { name: "Projects" }).waitFor();
  const listUrl = `${started.baseUrl}/#/p/${projectId}/e/${environmentId}/flags`;
  const ui: number[] = [];
  const api: number[] = [];
  for (let r = 0; r < RUNS + 1; r++) {
    await page.goto("about:blank");
    const a = performance.now();
    await page.goto(listUrl);
    await page.locator("table.flags tbody tr").first().waitFor();
    const b = performance.now();
    await call("vane.flags.v1.FlagService/ListFlags", { projectId, pageSize: 50 }, accessToken);
    const c = performance.now();
    if (r > 0) {
      // The first round warms caches.
      ui.push(b - a);
      api.push(c - b);
    }
  }

  // 3. A change through the API → the open list, against a WatchChanges stream in Node.
  const watcher = createClient(
    ChangeService,
    createConnectTransport({
      baseUrl: started.baseUrl,
      httpVersion: "1.1",
      interceptors: [(next) => (req) => (req.header.set("authorization", `Bearer ${accessToken}`), next(req))],
    }),
  );
  const abort = new AbortController();
  const arrivals: number[] = [];
  const stream = watcher.watchChanges({ projectId }, { signal: abort.signal });
  void (async () => {
    try {
      for await (const res of stream) if (res.changes.length > 0) arrivals.push(performance.now());
    } catch {
      /* aborted at the end */
    }
  })();
  await page.goto(listUrl);
  const cell = page.locator("table.flags tbody tr").first().locator("td").nth(2);
  await cell.waitFor();
  const toPage: number[] = [];
  const toStream: number[] = [];
  let version = 1; // the import made version 1
  for (let r = 0; r < RUNS + 1; r++) {
    const enabled = r % 2 === 1; // imported on: the first change turns it off
    const before = arrivals.length;
    const sent = performance.now();
    await call(
      "vane.flags.v1.FlagService/UpdateFlagEnvironment",
      { environmentId, flagKey: "flag-00000", expectedVersion: version, enabled, defaultVariant: "off" },
      accessToken,
    );
    version++;
    await page.waitForFunction(
      ([sel, want]) =>
        (globalThis as unknown as { document: { querySelector(s: string): { textContent: string } | null } }).document
          .querySelector(sel)
          ?.textContent?.startsWith(want) ?? false,
      ["table.flags tbody tr:first-child td:nth-child(3)", enabled ? "on" : "off"] as const,
    );
    const shown = performance.now();
    while (arrivals.length === before) await new Promise((r2) => setTimeout(r2, 1));
    if (r > 0) {
      toPage.push(shown - sent);
      toStream.push(arrivals[before] - sent);
    }
  }
  abort.abort();

  const ratio = (a: number[], b: number[]) => (stats(a).median / stats(b).median).toFixed(1);
  console.log(`\nflags: ${FLAGS}; ${RUNS} runs each (after one warm-up)\n`);
  console.log("| what | console | reference | ratio (medians) |");
  console.log("|---|---|---|---|");
  console.log(
    `| JavaScript and CSS of the first page, gzipped | ${gz.toFixed(1)} KB (${raw.toFixed(0)} KB raw, ${assets.length} files) | budget ${BUDGET_KB} KB | ${(gz / BUDGET_KB).toFixed(2)} of the budget |`,
  );
  console.log(`| navigation → first row of the flag list (Chromium) | ${fmt(ui)} | ListFlags from Node: ${fmt(api)} | ${ratio(ui, api)}× |`);
  console.log(
    `| API change → shown in the open list | ${fmt(toPage)} (p95 ≈ max of ${RUNS}) | → a WatchChanges stream in Node: ${fmt(toStream)} | ${ratio(toPage, toStream)}× |`,
  );
} finally {
  await browser.close();
  await vane.cleanup();
}
