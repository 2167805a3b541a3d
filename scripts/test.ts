/**
 * `npm test`: the whole suite, as CI runs it. Finds Postgres and NATS (or starts them), then runs
 * every gate — contract (buf lint, format, gen/ freshness, breaking), types, lint, and vitest
 * (unit, integration, end-to-end) — and prints one closing summary line. Any failure exits 1.
 */
import { spawnSync } from "node:child_process";
import { existsSync, mkdirSync, readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { startLocalInfra } from "#dev/local-infra.ts";
import { CHROMIUM_HINT, findChromium } from "../test/chromium.ts";

const root = fileURLToPath(new URL("..", import.meta.url));
const bin = (name: string) => `${root}node_modules/.bin/${name}`;
const failed: string[] = [];

function run(name: string, cmd: string, args: string[], env: NodeJS.ProcessEnv = process.env): void {
  console.log(`\n▶ ${name}`);
  const r = spawnSync(cmd, args, { cwd: root, stdio: "inherit", env });
  if (r.status !== 0) {
    failed.push(name);
    console.log(`✖ ${name} failed`);
  }
}

if (!existsSync(bin("vitest"))) {
  console.error("dependencies are not installed: run `npm install` first (or `npm ci`)");
  process.exit(1);
}

// The browser test drives a real Chromium: install Debian's package when there is none and we may
// (as root, or with password-less sudo); otherwise that test fails with CHROMIUM_HINT.
function ensureChromium(): void {
  if (findChromium()) return;
  const asRoot = process.getuid?.() === 0;
  const sudo = !asRoot && spawnSync("sudo", ["-n", "true"], { stdio: "ignore" }).status === 0;
  if (!existsSync("/usr/bin/apt-get") || !(asRoot || sudo)) {
    console.log(`  no Chromium found for the browser test: ${CHROMIUM_HINT}`);
    return;
  }
  const apt = (...args: string[]) =>
    spawnSync(asRoot ? "apt-get" : "sudo", [...(asRoot ? [] : ["-n", "apt-get"]), ...args], {
      stdio: "inherit",
      env: { ...process.env, DEBIAN_FRONTEND: "noninteractive" },
    }).status === 0;
  console.log("  installing Chromium for the browser test (apt-get install chromium)");
  if (!apt("install", "-y", "-q", "chromium")) {
    apt("update", "-q");
    apt("install", "-y", "-q", "chromium");
  }
  if (!findChromium()) console.log(`  Chromium could not be installed: ${CHROMIUM_HINT}`);
}
ensureChromium();

// Tests need a real Postgres (database `test`) and NATS with JetStream: use the ones configured
// or running locally, or start our own.
const infra = await startLocalInfra({
  root,
  databaseUrl: process.env.VANE_TEST_DATABASE_URL,
  natsUrl: process.env.VANE_TEST_NATS_URL,
  localDatabaseUrl: "postgres://postgres@127.0.0.1:5432/test",
  print: (line) => console.log(`  ${line}`),
});
const env = { ...process.env, VANE_TEST_DATABASE_URL: infra.databaseUrl, VANE_TEST_NATS_URL: infra.natsUrl };

try {
  run("contract: buf lint, buf format, gen/ freshness, buf breaking", process.execPath, ["--import", "tsx", "scripts/check-contract.ts"], env);
  run("types: tsc", bin("tsc"), ["-p", "."], env);
  run("types: tsc (console)", bin("tsc"), ["-p", "console"], env);
  run("lint: eslint", bin("eslint"), [".", "--max-warnings", "0"], env);
  run("format: prettier --check (npm run format fixes it)", bin("prettier"), ["--check", "**/*.{ts,tsx,js,mjs,cjs}"], env);
  mkdirSync(`${root}.tmp`, { recursive: true });
  const report = `${root}.tmp/vitest-report.json`;
  run("tests: vitest (unit, integration, end-to-end)", bin("vitest"), ["run", "--reporter=default", "--reporter=json", `--outputFile.json=${report}`], env);

  let passed = 0;
  let failedTests = 0;
  let skipped = 0;
  if (existsSync(report)) {
    const r = JSON.parse(readFileSync(report, "utf8")) as { numPassedTests: number; numFailedTests: number; numPendingTests: number; numTodoTests: number };
    passed = r.numPassedTests;
    failedTests = r.numFailedTests;
    skipped = r.numPendingTests + r.numTodoTests;
  }
  if (passed === 0) failed.push("no test ran");
  console.log(failed.length ? `\nfailed gates: ${failed.join("; ")}` : "\nall gates passed");
  console.log(`Tests: ${passed} passed, ${failedTests} failed, ${skipped} skipped`);
} finally {
  await infra.stop();
}
process.exit(failed.length ? 1 : 0);
