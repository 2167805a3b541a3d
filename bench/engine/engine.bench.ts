/**
 * In-process evaluations per second on one core: Vane's engine side by side with
 * @openfeature/flagd-core, @growthbook/growthbook and unleash-client, each evaluating the
 * equivalent flags locally (bootstrapped, no network) over the same contexts.
 *
 *   npx tsx bench/engine/engine.bench.ts [--seconds 1] [--rounds 5] [--compare DIR]
 *
 * `--compare DIR` adds another copy of the engine (DIR/index.ts, e.g. a checkout of the previous
 * commit's engine/ inside the repository, so it resolves the same packages) as one more row: a
 * refactoring's before and after, measured in the same run.
 *
 * The mix, round-robin: a static flag, an attribute rule, a shared ($ref) rule, two fractional
 * splits and a semver rule. Prints a markdown table (median of the rounds).
 *
 * Then `regex_match` (Vane snapshots' MATCHES): a mix of four regex flags through the engine, and
 * the same patterns on the same strings through the matcher alone, RE2 (re2js, what the operator
 * calls) beside JavaScript's RegExp with the `u` flag (what it called before), as a ratio; and one
 * pattern that backtracks exponentially, timed per match at growing input lengths.
 */
import { EventEmitter } from "node:events";
import os from "node:os";
import { readFileSync } from "node:fs";
import { resolve } from "node:path";
import { FlagdCore } from "@openfeature/flagd-core";
import { GrowthBookClient } from "@growthbook/growthbook";
import { Unleash } from "unleash-client";
import { compileFlagSet } from "#engine";
import { compileRegex } from "#engine";
import type { FlagSetDefinition } from "#engine";

const arg = (name: string, dflt: number) => {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 ? Number(process.argv[i + 1]) : dflt;
};
const SECONDS = arg("seconds", 1);
const compareIndex = process.argv.indexOf("--compare");
const COMPARE = compareIndex >= 0 ? process.argv[compareIndex + 1] : undefined;
const ROUNDS = arg("rounds", 5);

// --- the flags, in flagd's format ---------------------------------------------------------------

const flagd: FlagSetDefinition = {
  flags: {
    "static-banner": { state: "ENABLED", variants: { on: true, off: false }, defaultVariant: "on" },
    "staff-tools": {
      state: "ENABLED",
      variants: { on: true, off: false },
      defaultVariant: "off",
      targeting: {
        if: [{ and: [{ ends_with: [{ var: "email" }, "@example.com"] }, { in: [{ var: "country" }, ["de", "fr", "it", "es"]] }] }, "on", "off"],
      },
    },
    "beta-program": {
      state: "ENABLED",
      variants: { beta: "beta", ga: "ga" },
      defaultVariant: "ga",
      targeting: { if: [{ $ref: "isBetaUser" }, "beta", "ga"] },
    },
    "checkout-split": {
      state: "ENABLED",
      variants: { control: "control", treatment: "treatment" },
      defaultVariant: "control",
      targeting: {
        fractional: [
          ["control", 50],
          ["treatment", 50],
        ],
      },
    },
    "new-sync": {
      state: "ENABLED",
      variants: { on: true, off: false },
      defaultVariant: "off",
      targeting: { if: [{ sem_ver: [{ var: "version" }, ">=", "2.5.0"] }, "on", "off"] },
    },
    "rollout-10": {
      state: "ENABLED",
      variants: { on: true, off: false },
      defaultVariant: "off",
      targeting: {
        fractional: [
          ["on", 10],
          ["off", 90],
        ],
      },
    },
  },
  $evaluators: {
    isBetaUser: { or: [{ in: [{ var: "targetingKey" }, ["user-1", "user-7", "user-42"]] }, { starts_with: [{ var: "email" }, "beta."] }] },
  },
  metadata: { flagSetId: "bench", version: "1" },
};
const KEYS = Object.keys(flagd.flags);
const TYPES = ["boolean", "boolean", "string", "string", "boolean", "boolean"] as const;

// --- contexts ------------------------------------------------------------------------------------

let seed = 7;
const rnd = () => (seed = (Math.imul(seed, 1664525) + 1013904223) >>> 0) / 2 ** 32;
const pick = <T>(xs: readonly T[]) => xs[Math.floor(rnd() * xs.length)];
const contexts = Array.from({ length: 1020 }, (_, i) => ({
  targetingKey: `user-${i * 7919}`,
  email: `${pick(["ann", "beta.bob", "carl", "dora"])}${i}@${pick(["example.com", "acme.io"])}`,
  country: pick(["de", "fr", "us", "jp", "es"]),
  version: pick(["1.9.0", "2.4.9", "2.5.0", "3.1.4", "2.5.0-rc.1"]),
}));

// --- GrowthBook: the same rules as features -----------------------------------------------------

const gbFeatures = {
  "static-banner": { defaultValue: true },
  "staff-tools": {
    defaultValue: false,
    rules: [{ condition: { email: { $regex: "@example\\.com$" }, country: { $in: ["de", "fr", "it", "es"] } }, force: true }],
  },
  "beta-program": {
    defaultValue: "ga",
    rules: [{ condition: { $or: [{ id: { $in: ["user-1", "user-7", "user-42"] } }, { email: { $regex: "^beta\\." } }] }, force: "beta" }],
  },
  "checkout-split": {
    defaultValue: "control",
    rules: [{ key: "checkout-split", variations: ["control", "treatment"], weights: [0.5, 0.5], hashAttribute: "id", coverage: 1 }],
  },
  "new-sync": { defaultValue: false, rules: [{ condition: { version: { $vgte: "2.5.0" } }, force: true }] },
  "rollout-10": { defaultValue: false, rules: [{ force: true, coverage: 0.1, hashAttribute: "id" }] },
};

// --- Unleash: the same rules as toggles, served from memory -------------------------------------

const unleashToggles = [
  { name: "static-banner", enabled: true, strategies: [{ name: "default", parameters: {}, constraints: [] }] },
  {
    name: "staff-tools",
    enabled: true,
    strategies: [
      {
        name: "default",
        parameters: {},
        constraints: [
          { contextName: "email", operator: "STR_ENDS_WITH", values: ["@example.com"] },
          { contextName: "country", operator: "IN", values: ["de", "fr", "it", "es"] },
        ],
      },
    ],
  },
  {
    name: "beta-program",
    enabled: true,
    strategies: [
      { name: "userWithId", parameters: { userIds: "user-1,user-7,user-42" }, constraints: [] },
      { name: "default", parameters: {}, constraints: [{ contextName: "email", operator: "STR_STARTS_WITH", values: ["beta."] }] },
    ],
  },
  {
    name: "checkout-split",
    enabled: true,
    strategies: [{ name: "default", parameters: {}, constraints: [] }],
    variants: [
      { name: "control", weight: 500, weightType: "variable", stickiness: "userId" },
      { name: "treatment", weight: 500, weightType: "variable", stickiness: "userId" },
    ],
  },
  {
    name: "new-sync",
    enabled: true,
    strategies: [{ name: "default", parameters: {}, constraints: [{ contextName: "version", operator: "SEMVER_LT", value: "2.5.0", inverted: true }] }],
  },
  {
    name: "rollout-10",
    enabled: true,
    strategies: [{ name: "flexibleRollout", parameters: { rollout: "10", stickiness: "userId", groupId: "rollout-10" }, constraints: [] }],
  },
];

/** A repository that serves the toggles above from memory: Unleash never touches the network. */
function createMemoryRepository(toggles: typeof unleashToggles) {
  const byName = new Map(toggles.map((t) => [t.name, t]));
  const repo = Object.assign(new EventEmitter(), {
    getToggle: (name: string) => byName.get(name),
    getToggles: () => toggles,
    getTogglesWithSegmentData: () => toggles,
    getSegment: () => undefined,
    stop: () => {},
    start: async () => {
      repo.emit("ready");
      repo.emit("changed", toggles);
    },
  });
  return repo;
}

// --- the engines under test -----------------------------------------------------------------------

type Bench = (i: number) => number;

async function setup(): Promise<Record<string, Bench>> {
  const vane = compileFlagSet(flagd);
  const core = new FlagdCore();
  core.setConfigurations(JSON.stringify(flagd));
  const gb = new GrowthBookClient({});
  await gb.init({ payload: { features: gbFeatures } as never });
  const gbUsers = contexts.map((c) => ({ attributes: { id: c.targetingKey, email: c.email, country: c.country, version: c.version } }));
  const unleash = new Unleash({
    appName: "vane-bench",
    url: "http://offline.invalid/api/",
    disableMetrics: true,
    refreshInterval: 0,
    skipInstanceCountWarning: true,
    repository: createMemoryRepository(unleashToggles) as never,
  });
  unleash.on("error", () => {});
  await new Promise<void>((resolve) => (unleash.isSynchronized() ? resolve() : unleash.once("synchronized", () => resolve())));
  const unleashCtx = contexts.map((c) => ({ userId: c.targetingKey, properties: { email: c.email, country: c.country, version: c.version } }));

  const n = KEYS.length;
  const m = contexts.length;
  const other = COMPARE ? ((await import(resolve(COMPARE, "index.ts"))) as { compileFlagSet: typeof compileFlagSet }).compileFlagSet(flagd) : undefined;
  return {
    "Vane engine": (i) => {
      const r = vane.evaluate(KEYS[i % n], contexts[i % m], TYPES[i % n]);
      return r.value === true || r.value === "beta" || r.value === "treatment" ? 1 : 0;
    },
    ...(other
      ? {
          [`Vane engine (${COMPARE})`]: (i: number) => {
            const r = other.evaluate(KEYS[i % n], contexts[i % m], TYPES[i % n]);
            return r.value === true || r.value === "beta" || r.value === "treatment" ? 1 : 0;
          },
        }
      : {}),
    "@openfeature/flagd-core": (i) => {
      const k = i % n;
      const ctx = contexts[i % m];
      const r = TYPES[k] === "boolean" ? core.resolveBooleanEvaluation(KEYS[k], false, ctx) : core.resolveStringEvaluation(KEYS[k], "", ctx);
      return r.value === true || r.value === "beta" || r.value === "treatment" ? 1 : 0;
    },
    "@growthbook/growthbook": (i) => {
      const r = gb.evalFeature(KEYS[i % n], gbUsers[i % m]);
      return r.value === true || r.value === "beta" || r.value === "treatment" ? 1 : 0;
    },
    "unleash-client": (i) => {
      const key = KEYS[i % n];
      const ctx = unleashCtx[i % m];
      if (key === "checkout-split") return unleash.getVariant(key, ctx).name === "treatment" ? 1 : 0;
      if (key === "beta-program") return unleash.isEnabled(key, ctx) ? 1 : 0;
      return unleash.isEnabled(key, ctx) ? 1 : 0;
    },
  };
}

/** Runs `fn` for about `seconds`, in batches so the clock is read rarely; returns ops/s. */
function measure(fn: Bench, seconds: number): { opsPerSec: number; checksum: number } {
  const batch = 10_000;
  let ops = 0;
  let checksum = 0;
  const start = process.hrtime.bigint();
  const deadline = start + BigInt(Math.round(seconds * 1e9));
  let now = start;
  while (now < deadline) {
    for (let j = 0; j < batch; j++) checksum += fn(ops + j);
    ops += batch;
    now = process.hrtime.bigint();
  }
  return { opsPerSec: ops / (Number(now - start) / 1e9), checksum };
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)];
}

function cpuModel(): string {
  try {
    const line = readFileSync("/proc/cpuinfo", "utf8")
      .split("\n")
      .find((l) => l.startsWith("model name"));
    return line ? line.split(":")[1].trim() : (os.cpus()[0]?.model ?? "unknown");
  } catch {
    return os.cpus()[0]?.model ?? "unknown";
  }
}

// --- regex_match -----------------------------------------------------------------------------------

const REGEX_FLAGS: [key: string, attribute: "email" | "userAgent" | "version", pattern: string, flags: string][] = [
  ["staff-email", "email", "^[a-z.]+[0-9]*@(example|acme)\\.(com|io)$", "i"],
  ["beta-user", "email", "^beta\\.", ""],
  ["mobile", "userAgent", "(iPhone|iPad|Android).*Mobile", ""],
  ["new-version", "version", "^(2\\.[5-9]|[3-9])\\.", ""],
];
const regexFlagd: FlagSetDefinition = {
  flags: Object.fromEntries(
    REGEX_FLAGS.map(([key, attribute, pattern, flags]) => [
      key,
      {
        state: "ENABLED",
        variants: { on: true, off: false },
        defaultVariant: "off",
        targeting: { if: [{ regex_match: [{ var: attribute }, pattern, ...(flags ? [flags] : [])] }, "on", "off"] },
      },
    ]),
  ),
};
const USER_AGENTS = [
  "Mozilla/5.0 (iPhone; CPU iPhone OS 17_4 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.4 Mobile/15E148 Safari/604.1",
  "Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0.0.0 Mobile Safari/537.36",
  "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0.0.0 Safari/537.36",
  "Mozilla/5.0 (Macintosh; Intel Mac OS X 14_4) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.4 Safari/605.1.15",
];
const regexContexts = contexts.map((c) => ({ ...c, userAgent: pick(USER_AGENTS) }));

function regexBenches(): Record<string, Bench> {
  const vane = compileFlagSet(regexFlagd, { extensions: true });
  const keys = REGEX_FLAGS.map(([key]) => key);
  const re2 = REGEX_FLAGS.map(([, , pattern, flags]) => compileRegex(pattern, flags));
  const js = REGEX_FLAGS.map(([, , pattern, flags]) => new RegExp(pattern, `u${flags}`));
  const attrs = REGEX_FLAGS.map(([, attribute]) => attribute);
  const n = keys.length;
  const m = regexContexts.length;
  // Every flag meets every context: flag i % n, context ⌊i / n⌋ % m.
  const ctx = (i: number) => regexContexts[Math.floor(i / n) % m];
  return {
    "Vane engine, regex_match flags (evaluations)": (i) => (vane.evaluate(keys[i % n], ctx(i), "boolean").value === true ? 1 : 0),
    "matcher alone: RE2 (re2js), as regex_match calls it": (i) => (re2[i % n].test(ctx(i)[attrs[i % n]]) ? 1 : 0),
    "matcher alone: JavaScript RegExp (u flag), the previous engine's": (i) => (js[i % n].test(ctx(i)[attrs[i % n]]) ? 1 : 0),
  };
}

/** Median milliseconds of one `test` call, over `times` calls. */
function timeMatch(re: { test(s: string): boolean }, s: string, times: number): number {
  const xs: number[] = [];
  for (let t = 0; t < times; t++) {
    const start = process.hrtime.bigint();
    re.test(s);
    xs.push(Number(process.hrtime.bigint() - start) / 1e6);
  }
  return median(xs);
}

function runRegex(): void {
  const benches = regexBenches();
  const names = Object.keys(benches);
  // The engine and both matchers must agree on every (flag, context) pair.
  for (let i = 0; i < REGEX_FLAGS.length * regexContexts.length; i++) {
    const answers = names.map((name) => benches[name](i));
    if (new Set(answers).size !== 1) throw new Error(`regex benches disagree at ${i}: ${answers.join(", ")}`);
  }
  for (const name of names) measure(benches[name], SECONDS); // warm-up
  const results: Record<string, number[]> = Object.fromEntries(names.map((n) => [n, []]));
  for (let round = 0; round < ROUNDS; round++) for (const name of names) results[name].push(measure(benches[name], SECONDS).opsPerSec);
  const med = Object.fromEntries(names.map((n) => [n, median(results[n])]));
  const fmt = (x: number) => Math.round(x).toLocaleString("en-US");
  console.log(`\nregex_match: ${REGEX_FLAGS.length} patterns round-robin over the same contexts (email, user agent, version)\n`);
  console.log("| regex_match | operations/s (median) | min | max |");
  console.log("|---|---:|---:|---:|");
  for (const n of names) console.log(`| ${n} | ${fmt(med[n])} | ${fmt(Math.min(...results[n]))} | ${fmt(Math.max(...results[n]))} |`);
  const [engine, re2, js] = names;
  console.log(
    `\nRE2 matcher / RegExp matcher: ${(med[re2] / med[js]).toFixed(2)}×; one match costs ${(1e9 / med[re2]).toFixed(0)} ns (RE2) vs ${(1e9 / med[js]).toFixed(0)} ns (RegExp); one regex evaluation ${(1e9 / med[engine]).toFixed(0)} ns`,
  );

  // A pattern that backtracks exponentially: "a" × n + "!" against (a|aa)+$ (no match).
  const pattern = "(a|aa)+$";
  const slowRe2 = compileRegex(pattern);
  const slowJs = new RegExp(pattern, "u");
  console.log(`\n| \`${pattern.replace("|", "\\|")}\` on "a" × n + "!" | RE2, ms per match (median) | RegExp, ms per match |`);
  console.log("|---|---:|---:|");
  for (const n of [24, 28, 32, 5_000, 100_000]) {
    const s = `${"a".repeat(n)}!`;
    const jsMs = n <= 32 ? timeMatch(slowJs, s, 3).toFixed(2) : "does not return";
    console.log(`| ${n.toLocaleString("en-US")} | ${timeMatch(slowRe2, s, n > 5_000 ? 5 : 21).toFixed(3)} | ${jsMs} |`);
  }
}

async function main(): Promise<void> {
  const benches = await setup();
  const names = Object.keys(benches);
  // Sanity: every engine must actually produce a mix of outcomes.
  for (const name of names) {
    const { checksum } = measure(benches[name], 0.05);
    if (checksum === 0) throw new Error(`${name} evaluated nothing to true: check its configuration`);
  }
  // Equivalence: per flag, the share of contexts each engine turns on (true / "beta" / "treatment").
  console.log("| flag | " + names.join(" | ") + " |");
  console.log("|---|" + names.map(() => "---:").join("|") + "|");
  for (let k = 0; k < KEYS.length; k++) {
    const shares = names.map((name) => {
      let on = 0;
      for (let c = 0; c < contexts.length; c++) on += benches[name](c * KEYS.length + k);
      return `${((100 * on) / contexts.length).toFixed(1)}%`;
    });
    console.log(`| ${KEYS[k]} | ${shares.join(" | ")} |`);
  }
  console.log("");
  for (const name of names) measure(benches[name], SECONDS); // warm-up
  const results: Record<string, number[]> = Object.fromEntries(names.map((n) => [n, []]));
  for (let round = 0; round < ROUNDS; round++) {
    // Interleave engines so drift on a shared machine hits them alike.
    for (const name of names) results[name].push(measure(benches[name], SECONDS).opsPerSec);
  }
  const med = Object.fromEntries(names.map((n) => [n, median(results[n])]));
  const competitors = names.filter((n) => !n.startsWith("Vane engine"));
  const fastest = competitors.reduce((a, b) => (med[a] >= med[b] ? a : b));
  const fmt = (x: number) => Math.round(x).toLocaleString("en-US");

  console.log(`Machine: ${os.cpus().length} logical CPUs (nproc), ${cpuModel()}, Node ${process.version}`);
  console.log(`Rounds: ${ROUNDS} × ${SECONDS}s per engine after a ${SECONDS}s warm-up; median shown; one process, one thread.\n`);
  console.log("| engine | evaluations/s (median) | min | max | vs Vane |");
  console.log("|---|---:|---:|---:|---:|");
  for (const n of names) {
    const ratio = med["Vane engine"] / med[n];
    console.log(
      `| ${n} | ${fmt(med[n])} | ${fmt(Math.min(...results[n]))} | ${fmt(Math.max(...results[n]))} | ${n === "Vane engine" ? "1.00×" : `${ratio.toFixed(2)}× faster`} |`,
    );
  }
  console.log(`\nVane / fastest competitor (${fastest}): ${(med["Vane engine"] / med[fastest]).toFixed(2)}×`);
  runRegex();
  process.exit(0);
}

await main();
