/**
 * Every metric name the alert rules, the dashboard and docs/operations.md use exists: the real
 * processes (`npm start` for identity, flags, collector and analytics; the evaluator's entry
 * point on a flagd file) serve a few calls, and their /metrics pages are scraped.
 */
import { type ChildProcess, spawn } from "node:child_process";
import { readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { parse } from "yaml";
import { freePort } from "#dev/local-infra.ts";
import { connectTestNats, deleteStreams, dropSchema, testDatabaseUrl, testNatsUrl, uniqueName } from "#test/support/harness.ts";
import {
  dashboardExpressions,
  exposedNames,
  externalMetrics,
  labelNamesIn,
  metricNamesIn,
  recordedNames,
  ruleExpressions,
  targetLabels,
} from "../src/metric-names.ts";
import { k8sPath } from "../src/render.ts";

const root = fileURLToPath(new URL("../..", import.meta.url));
const prefix = `${uniqueName("metrics")}_`;
const names = {
  bucket: `${prefix}snapshots`,
  domain: `${prefix}DOMAIN`.toUpperCase(),
  domainPrefix: `${prefix}domain`,
  events: `${prefix}EVENTS`.toUpperCase(),
};

interface Child {
  proc: ChildProcess;
  output: () => string;
  exited: Promise<unknown>;
}

function run(args: string[], env: Record<string, string>): Child {
  let output = "";
  const proc = spawn(process.execPath, ["--import", "tsx", ...args], {
    cwd: root,
    env: {
      ...process.env,
      VANE_DATABASE_URL: testDatabaseUrl,
      VANE_NATS_URL: testNatsUrl,
      VANE_SCHEMA_PREFIX: prefix,
      VANE_SNAPSHOT_BUCKET: names.bucket,
      VANE_DOMAIN_STREAM: names.domain,
      VANE_DOMAIN_SUBJECT_PREFIX: names.domainPrefix,
      VANE_EVENTS_STREAM: names.events,
      VANE_HOST: "127.0.0.1",
      ...env,
    },
    stdio: ["ignore", "pipe", "pipe"],
  });
  const exited = new Promise((resolve) => proc.once("exit", resolve));
  proc.stdout!.on("data", (c: Buffer) => void (output += c.toString("utf8")));
  proc.stderr!.on("data", (c: Buffer) => void (output += c.toString("utf8")));
  return { proc, output: () => output, exited };
}

async function waitFor(child: Child, pattern: RegExp, timeoutMs: number): Promise<RegExpMatchArray> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const m = child.output().match(pattern);
    if (m) return m;
    if (child.proc.exitCode !== null) throw new Error(`exited early:\n${child.output()}`);
    if (Date.now() > deadline) throw new Error(`no ${pattern} in ${timeoutMs} ms:\n${child.output()}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

async function stop(child: Child | undefined): Promise<void> {
  if (!child || child.proc.exitCode !== null || child.proc.signalCode !== null) return;
  child.proc.kill("SIGTERM");
  await Promise.race([child.exited, new Promise((r) => setTimeout(r, 10_000))]);
  if (child.proc.exitCode === null) child.proc.kill("SIGKILL");
}

let start: Child | undefined;
let evaluator: Child | undefined;
const scraped = new Set<string>();
const pages: string[] = [];

beforeAll(async () => {
  // Free ports for the flagd servers too: other suites (or another checkout's) may hold 8013/8015.
  start = run(["scripts/start.ts", "--port", "0"], { VANE_LOG_LEVEL: "warn", VANE_FLAGD_PORT: "0", VANE_FLAGD_SYNC_PORT: "0" });
  await waitFor(start, /Press Ctrl-C to stop/, 30_000);
  const [, baseUrl] = start.output().match(/Vane is running at (http:\/\/127\.0\.0\.1:\d+)\n/) ?? [];
  const [secret] = start.output().match(/vane_personal_[A-Za-z0-9_-]+/) ?? [];
  const call = (url: string, path: string, body: unknown, token?: string) =>
    fetch(`${url}/${path}`, {
      method: "POST",
      headers: { "content-type": "application/json", ...(token ? { authorization: `Bearer ${token}` } : {}) },
      body: JSON.stringify(body),
    });
  const { accessToken, principal } = (await (await call(baseUrl, "vane.identity.v1.AuthService/ExchangeApiKey", { apiKey: secret })).json()) as {
    accessToken: string;
    principal: { organizationId: string };
  };
  const { projects } = (await (
    await call(baseUrl, "vane.identity.v1.IdentityService/ListProjects", { organizationId: principal.organizationId }, accessToken)
  ).json()) as {
    projects: { id: string }[];
  };
  // A write through the outbox, a read, and a refused call (an error code label).
  await call(
    baseUrl,
    "vane.flags.v1.FlagService/CreateFlag",
    {
      projectId: projects[0].id,
      key: "metrics-flag",
      name: "Metrics",
      type: "FLAG_TYPE_BOOLEAN",
      variants: [
        { key: "on", value: true },
        { key: "off", value: false },
      ],
    },
    accessToken,
  );
  await call(baseUrl, "vane.flags.v1.FlagService/GetFlag", { projectId: projects[0].id, key: "metrics-flag" }, accessToken);
  expect((await call(baseUrl, "vane.flags.v1.FlagService/GetFlag", { projectId: projects[0].id, key: "x" })).status).toBe(401);

  const [port, flagdPort, syncPort] = [await freePort(), await freePort(), await freePort()];
  evaluator = run(["services/evaluator/main.ts"], {
    VANE_PORT: String(port),
    VANE_FLAGD_PORT: String(flagdPort),
    VANE_FLAGD_SYNC_PORT: String(syncPort),
    VANE_FLAGD_FILE: "services/evaluator/test/flags.fixture.json",
    VANE_JWKS_URL: `${baseUrl}/.well-known/jwks.json`,
    VANE_LOG_LEVEL: "info",
  });
  await waitFor(evaluator, /evaluator serving/, 30_000);
  const flagd = `http://127.0.0.1:${flagdPort}`;
  expect((await call(flagd, "flagd.evaluation.v1.Service/ResolveBoolean", { flagKey: "bool-static", context: {} })).status).toBe(200);
  await call(flagd, "flagd.evaluation.v1.Service/ResolveBoolean", { flagKey: "no-such-flag", context: {} });

  for (const url of [baseUrl, `http://127.0.0.1:${port}`]) {
    const page = await (await fetch(`${url}/metrics`)).text();
    pages.push(page);
    for (const n of exposedNames(page)) scraped.add(n);
  }
}, 90_000);

afterAll(async () => {
  await Promise.all([stop(evaluator), stop(start)]);
  for (const service of ["identity", "flags", "analytics"]) await dropSchema(testDatabaseUrl, `${prefix}${service}`);
  const nc = await connectTestNats();
  await deleteStreams(nc, [`KV_${names.bucket}`, names.domain, names.events]);
  await nc.drain();
}, 30_000);

const rules = parse(readFileSync(k8sPath("components/observability/rules.yaml"), "utf8"));
const dashboard = JSON.parse(readFileSync(k8sPath("components/observability/dashboards/vane-overview.json"), "utf8"));
const operations = readFileSync(k8sPath("..", "docs", "operations.md"), "utf8");
const recorded = recordedNames(rules);
const sources: [string, string[]][] = [
  ["rules.yaml", ruleExpressions(rules)],
  ["the Grafana dashboard", dashboardExpressions(dashboard)],
];

describe("metric names", () => {
  it("the scrape carries the instruments and buckets the rules rely on", () => {
    for (const n of [
      "rpc_server_duration_bucket",
      "rpc_server_duration_count",
      "vane_evaluator_snapshot_stale_seconds",
      "vane_evaluator_evaluations_total",
      "vane_outbox_backlog",
      "vane_consumer_lag",
    ]) {
      expect(scraped, n).toContain(n);
    }
    // The latency SLI's threshold is a real bucket boundary, in milliseconds.
    expect(pages.join("\n")).toMatch(/^rpc_server_duration_bucket\{[^}]*le="5"[^}]*\}/m);
  });

  it.each([...sources, ["docs/operations.md", [operations]] as [string, string[]]])("every metric %s uses exists", (_what, texts) => {
    const missing = [...new Set(texts.flatMap(metricNamesIn))].filter((n) => !scraped.has(n) && !recorded.has(n) && !externalMetrics.has(n));
    expect(missing).toEqual([]);
  });

  it.each(sources)("every label %s selects or aggregates on exists", (_what, exprs) => {
    const external = exprs.filter((e) => metricNamesIn(e).some((n) => externalMetrics.has(n)));
    const missing = [...new Set(exprs.filter((e) => !external.includes(e)).flatMap(labelNamesIn))].filter((l) => !scraped.has(l) && !targetLabels.has(l));
    expect(missing).toEqual([]);
  });

  it("notices a wrong name and a wrong label", () => {
    expect(metricNamesIn("sum(rate(rpc_server_duration_milliseconds_count[5m]))").filter((n) => !scraped.has(n))).toEqual([
      "rpc_server_duration_milliseconds_count",
    ]);
    expect(labelNamesIn("max by (environment) (vane_evaluator_snapshot_age_seconds)").filter((l) => !scraped.has(l))).toEqual(["environment"]);
    expect(recorded.has("vane:evaluation_errors:ratio_rate5m")).toBe(true);
  });
});
