/**
 * The real, unmodified OpenFeature flagd providers against Vane, beyond flagd-providers.test.ts:
 * every `sem_ver` operator, the injected `$flagd` context, fractional splits with an explicit
 * bucketing value and bucket agreement for 200 keys (non-ASCII among them), every error code
 * through every resolver, the web provider's DEFAULT and ERROR reasons, and the rpc provider's own
 * cache (its default) evicted by a change event.
 *
 * Resolvers: `@openfeature/flagd-provider` rpc (flagd.evaluation.v2, evaluated by Vane) and
 * in-process (flagd.sync.v1: Vane sends the flag set, flagd-core evaluates it in the provider),
 * through `@openfeature/server-sdk`; `@openfeature/flagd-web-provider` (flagd.evaluation.v1
 * ResolveAll over Connect, evaluated by Vane) through `@openfeature/web-sdk` in Node.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { FlagdCore } from "@openfeature/flagd-core";
import { FlagdProvider } from "@openfeature/flagd-provider";
import { FlagdWebProvider } from "@openfeature/flagd-web-provider";
import { OpenFeature, ProviderEvents, type Client, type EvaluationContext } from "@openfeature/server-sdk";
import { OpenFeature as WebOpenFeature, type Client as WebClient } from "@openfeature/web-sdk";
import { compileFlagSet } from "#engine";
import { referenceBucket } from "#engine/testing";
import { eventually, fixture, fixtureText, pick, snapshotOf, startEvaluator, type EvaluatorHarness, type Picked } from "./harness.ts";

const ENV = "env-flagd-ops";
const CACHE_ENV = "env-flagd-cache";
let h: EvaluatorHarness;
let rpc: Client;
let inProcess: Client;
let web: WebClient;
const engine = compileFlagSet(fixture);

beforeAll(async () => {
  h = await startEvaluator({ env: { VANE_FLAGD_KEEPALIVE: "200ms" } });
  await h.put(snapshotOf(fixture, { environmentId: ENV, version: 1 }));
  await h.put(snapshotOf(fixture, { environmentId: CACHE_ENV, version: 1 }));
  await eventually(() => h.module.store.get(ENV) && h.module.store.get(CACHE_ENV), 5_000, "snapshots loaded");
  const host = "127.0.0.1";
  await OpenFeature.setProviderAndWait(
    "rpc",
    new FlagdProvider({ host, port: h.flagd.evaluationPort!, resolverType: "rpc", selector: ENV, cache: "disabled", deadlineMs: 2_000 }),
  );
  await OpenFeature.setProviderAndWait(
    "in-process",
    new FlagdProvider({ host, port: h.flagd.syncPort!, resolverType: "in-process", selector: ENV, deadlineMs: 2_000 }),
  );
  rpc = OpenFeature.getClient("rpc");
  inProcess = OpenFeature.getClient("in-process");
  await WebOpenFeature.setContext({});
  await WebOpenFeature.setProviderAndWait(
    new FlagdWebProvider({
      host,
      port: h.flagd.evaluationPort!,
      tls: false,
      maxRetries: 3,
      interceptors: [(next) => (req) => (req.header.set("flagd-selector", ENV), next(req))],
    }),
  );
  web = WebOpenFeature.getClient();
}, 30_000);

afterAll(async () => {
  await OpenFeature.close();
  await WebOpenFeature.close();
  await h?.close();
});

/** One resolver, seen the same way: a boolean and a string resolve for a context. */
interface Resolver {
  bool(key: string, dflt: boolean, ctx: EvaluationContext): Promise<Picked>;
  str(key: string, dflt: string, ctx: EvaluationContext): Promise<Picked>;
}
const server = (client: () => Client): Resolver => ({
  bool: async (key, dflt, ctx) => pick(await client().getBooleanDetails(key, dflt, ctx)),
  str: async (key, dflt, ctx) => pick(await client().getStringDetails(key, dflt, ctx)),
});
/** The web provider evaluates at context change (ResolveAll), then reads its copy. */
const browser: Resolver = {
  bool: async (key, dflt, ctx) => (await WebOpenFeature.setContext(ctx), pick(web.getBooleanDetails(key, dflt))),
  str: async (key, dflt, ctx) => (await WebOpenFeature.setContext(ctx), pick(web.getStringDetails(key, dflt))),
};
const resolvers: [string, Resolver][] = [
  ["rpc resolver (flagd.evaluation.v2)", server(() => rpc)],
  ["in-process resolver (flagd.sync.v1 + flagd-core)", server(() => inProcess)],
  ["web provider (flagd.evaluation.v1 ResolveAll)", browser],
];

// [operator, version in the context, expected result]; targets: 1.2.3, `~` 1.2.5, `^` v1.2.0.
// null: sem_ver returns null on an unparsable version, so the rule is null and the reason DEFAULT.
const SEMVER_CASES: [string, string, boolean | null][] = [
  ["=", "1.2.3", true],
  ["=", "v1.2.3", true],
  ["=", "V1.2.3", true],
  ["=", "1.2.3+build.7", true],
  ["=", "1.2.4", false],
  ["=", "1.2.3-rc.1", false],
  ["!=", "1.2.4", true],
  ["!=", "v1.2.3", false],
  [">", "1.10.0", true],
  [">", "2.0.0-alpha", true],
  [">", "1.2.3", false],
  [">", "1.2.3-rc.1", false],
  ["<", "1.2.3-rc.1", true],
  ["<", "0.9.9", true],
  ["<", "1.2", true],
  ["<", "v1.2.3", false],
  [">=", "1.2.3", true],
  [">=", "1.3", true],
  [">=", "V1.2.2", false],
  ["<=", "1.2.3", true],
  ["<=", "1.2.3-alpha.1", true],
  ["<=", "1.2.4", false],
  ["~", "1.2.0", true],
  ["~", "v1.2.9", true],
  ["~", "1.3.0", false],
  ["~", "2.2.5", false],
  ["^", "1.0.0", true],
  ["^", "v1.99.0", true],
  ["^", "2.0.0", false],
  ["^", "0.9.0", false],
  ["=", "not-a-version", null],
  ["~", "1.2.3.4", null],
];

/** 200 targeting keys, about half of them non-ASCII (2- to 4-byte UTF-8, surrogate pairs). */
const KEYS: string[] = ["Zoë", "日本", "🙂", "naïve café", "Ωmega", "Ünïcødé-ß"];
for (let i = 0; KEYS.length < 200; i++) KEYS.push([`user-${i}`, `Zoë-${i}`, `日本-${i}`, `🙂${i}🙃`, `acct_${i * 7919}`][i % 5]);
const NON_ASCII = /[^\u0000-\u007f]/u; // eslint-disable-line no-control-regex

const fractionalOf = (key: string) => {
  const args = (fixture.flags as unknown as Record<string, { targeting: { fractional: unknown[] } }>)[key].targeting.fractional;
  return args.filter((a): a is [string, number] => Array.isArray(a));
};

describe.each(resolvers)("%s", (_name, r) => {
  it("evaluates sem_ver with every operator (= != > < >= <= ~ ^), a leading v/V and partial versions", async () => {
    for (const [op, version, expected] of SEMVER_CASES) {
      const got = await r.bool("semver-ops", true, { targetingKey: "u", op, version });
      const want =
        expected === null ? { value: false, variant: "false", reason: "DEFAULT" } : { value: expected, variant: String(expected), reason: "TARGETING_MATCH" };
      expect(got, `sem_ver ${version} ${op}`).toMatchObject(want);
      expect(engine.evaluate("semver-ops", { op, version })).toMatchObject(want);
    }
  });

  it("injects $flagd.flagKey and $flagd.timestamp (whole Unix seconds, now), overriding the caller's", async () => {
    const now = Math.floor(Date.now() / 1000);
    const window = { notBefore: now - 30, notAfter: now + 30 };
    expect(await r.str("flagd-context", "dflt", { targetingKey: "u", ...window })).toMatchObject({ value: "ok", variant: "ok", reason: "TARGETING_MATCH" });
    const spoofed = { targetingKey: "u", ...window, $flagd: { flagKey: "something-else", timestamp: 1.5 } };
    expect(await r.str("flagd-context", "dflt", spoofed)).toMatchObject({ value: "ok", reason: "TARGETING_MATCH" });
    // The window is checked: a timestamp in milliseconds, or a stale one, would land here.
    expect(await r.str("flagd-context", "dflt", { targetingKey: "u", notBefore: now + 3_600, notAfter: now + 7_200 })).toMatchObject({ value: "too-early" });
    expect(await r.str("flagd-context", "dflt", { targetingKey: "u", notBefore: now - 7_200, notAfter: now - 3_600 })).toMatchObject({ value: "too-late" });
  });

  it("splits fractionally on an explicit bucketing value, whatever the targeting key", async () => {
    const seen = new Set<string>();
    for (const company of ["acme", "globex", "initech", "umbrella", "hooli", "stark", "wayne", "wonka", "tyrell", "cyberdyne", "soylent", "oscorp"]) {
      const want = referenceBucket(company, fractionalOf("split-by-value"));
      const a = await r.str("split-by-value", "", { targetingKey: "user-1", company });
      const b = await r.str("split-by-value", "", { targetingKey: "someone-else", company });
      const noKey = await r.str("split-by-value", "", { company });
      for (const d of [a, b, noKey]) expect(d, company).toMatchObject({ variant: want, reason: "TARGETING_MATCH" });
      expect(engine.evaluate("split-by-value", { company }).variant).toBe(want);
      seen.add(want!);
    }
    expect(seen.size).toBeGreaterThan(2);
  });

  it("gives DEFAULT for a split without a targeting key (flagKey + targetingKey needs one)", async () => {
    for (const ctx of [{}, { targetingKey: "" }] as EvaluationContext[])
      expect(await r.str("split", "dflt", ctx)).toMatchObject({ value: "A", variant: "a", reason: "DEFAULT" });
  });
});

describe("bucket agreement for 200 targeting keys, non-ASCII among them", () => {
  const splits = ["split", "split-by-value"] as const;
  /** flagd's rule over UTF-8 bytes, computed independently of the engine. */
  const utf8Variant = (flag: (typeof splits)[number], key: string) => referenceBucket(flag === "split" ? `split${key}` : key, fractionalOf(flag));
  const ctxOf = (key: string) => ({ targetingKey: key, company: key });

  it("the engine agrees with an independent UTF-8 MurmurHash3 for every key", () => {
    for (const key of KEYS) for (const flag of splits) expect(engine.evaluate(flag, ctxOf(key)).variant, `${flag} ${key}`).toBe(utf8Variant(flag, key));
    expect(KEYS.filter((k) => NON_ASCII.test(k)).length).toBeGreaterThan(90);
  });

  it.each([
    ["rpc resolver", () => rpc],
    ["web provider", undefined],
  ] as const)("%s serves the engine's variant for every key", async (_name, client) => {
    for (const key of KEYS) {
      for (const flag of splits) {
        const d = client
          ? await client().getStringDetails(flag, "", ctxOf(key))
          : (await WebOpenFeature.setContext(ctxOf(key)), web.getStringDetails(flag, ""));
        expect(d.variant, `${flag} ${key}`).toBe(engine.evaluate(flag, ctxOf(key)).variant);
        expect(d.reason).toBe("TARGETING_MATCH");
      }
    }
  });

  it("in-process resolver: the engine's variant for every ASCII key; for non-ASCII keys flagd-core's own (UTF-16) hash", async () => {
    // flagd-core 4.0.1 hashes with imurmurhash over UTF-16 code units, not UTF-8 bytes as flagd
    // (Go) and Vane do (docs/engine.md, "Known differences from flagd-core"). The provider runs
    // flagd-core over the flag set Vane synced, so for non-ASCII keys it must agree with
    // flagd-core run locally over the fixture: that proves the synced set is faithful.
    const core = new FlagdCore();
    core.setConfigurations(fixtureText);
    let differs = 0;
    for (const key of KEYS) {
      for (const flag of splits) {
        const d = await inProcess.getStringDetails(flag, "", ctxOf(key));
        expect(d.reason).toBe("TARGETING_MATCH");
        if (!NON_ASCII.test(key)) {
          expect(d.variant, `${flag} ${key}`).toBe(engine.evaluate(flag, ctxOf(key)).variant);
        } else {
          expect(d.variant, `${flag} ${key}`).toBe(core.resolveStringEvaluation(flag, "", ctxOf(key)).variant);
          if (d.variant !== utf8Variant(flag, key)) differs++;
        }
      }
    }
    // Pinned so that a flagd-core that hashes UTF-8 shows up here (then compare with the engine for every key).
    expect(differs, "non-ASCII keys where flagd-core's bucket differs from flagd's").toBeGreaterThan(0);
  });
});

describe.each([
  ["rpc resolver", () => rpc],
  ["in-process resolver", () => inProcess],
] as const)("every error code through the %s", (_name, client) => {
  it("FLAG_NOT_FOUND, TYPE_MISMATCH, PARSE_ERROR, GENERAL: reason ERROR and the caller's default", async () => {
    expect(pick(await client().getBooleanDetails("no-such-flag", true))).toMatchObject({ value: true, reason: "ERROR", errorCode: "FLAG_NOT_FOUND" });
    expect(pick(await client().getNumberDetails("string-static", 7))).toMatchObject({ value: 7, reason: "ERROR", errorCode: "TYPE_MISMATCH" });
    expect(pick(await client().getStringDetails("bool-static", "x"))).toMatchObject({ value: "x", reason: "ERROR", errorCode: "TYPE_MISMATCH" });
    expect(pick(await client().getObjectDetails("int-static", { d: 1 }))).toMatchObject({ value: { d: 1 }, reason: "ERROR", errorCode: "TYPE_MISMATCH" });
    // An unknown $ref is a PARSE_ERROR of that flag only.
    expect(pick(await client().getBooleanDetails("unknown-ref", true, { targetingKey: "u" }))).toMatchObject({
      value: true,
      reason: "ERROR",
      errorCode: "PARSE_ERROR",
    });
    expect(pick(await client().getBooleanDetails("bool-static", true))).toMatchObject({ value: false, reason: "STATIC" });
    // A rule naming a variant the flag does not have is GENERAL.
    expect(pick(await client().getBooleanDetails("unknown-variant", true, { targetingKey: "u", choice: "purple" }))).toMatchObject({
      value: true,
      reason: "ERROR",
      errorCode: "GENERAL",
    });
    expect(pick(await client().getBooleanDetails("unknown-variant", false, { targetingKey: "u", choice: "on" }))).toMatchObject({
      value: true,
      reason: "TARGETING_MATCH",
    });
  });
});

describe("a rule that fails while evaluating", () => {
  it("is PARSE_ERROR through the rpc resolver, as flagd (Go) and Vane's engine say", async () => {
    expect(engine.evaluate("parse-error", { name: "abc" })).toMatchObject({ reason: "ERROR", errorCode: "PARSE_ERROR" });
    expect(pick(await rpc.getBooleanDetails("parse-error", true, { targetingKey: "u", name: "abc" }))).toMatchObject({
      value: true,
      reason: "ERROR",
      errorCode: "PARSE_ERROR",
    });
  });

  it("is GENERAL through the in-process resolver: flagd-core's own verdict, not Vane's (docs/engine.md)", async () => {
    // The in-process provider evaluates with flagd-core; Vane only syncs the flag set. flagd-core
    // reports a rule that throws at evaluation as GENERAL (engine/conformance.test.ts).
    const core = new FlagdCore();
    core.setConfigurations(fixtureText);
    expect(core.resolveBooleanEvaluation("parse-error", true, { targetingKey: "u", name: "abc" })).toMatchObject({ reason: "ERROR", errorCode: "GENERAL" });
    expect(pick(await inProcess.getBooleanDetails("parse-error", true, { targetingKey: "u", name: "abc" }))).toMatchObject({
      value: true,
      reason: "ERROR",
      errorCode: "GENERAL",
    });
    expect(pick(await inProcess.getBooleanDetails("parse-error", false, { targetingKey: "u", name: 5 }))).toMatchObject({ value: true, variant: "on" });
  });
});

describe("@openfeature/flagd-web-provider reasons", () => {
  it("DEFAULT when the rule gives null, TARGETING_MATCH, STATIC", async () => {
    await WebOpenFeature.setContext({ targetingKey: "user-1", plan: "free" });
    expect(pick(web.getBooleanDetails("equals", true))).toMatchObject({ value: false, variant: "no", reason: "DEFAULT" });
    expect(pick(web.getBooleanDetails("starts-with", true))).toMatchObject({ value: false, variant: "stable", reason: "DEFAULT" });
    expect(pick(web.getStringDetails("ends-with-ref", ""))).toMatchObject({ value: "public", variant: "public", reason: "DEFAULT" });
    await WebOpenFeature.setContext({ targetingKey: "user-1", plan: "pro" });
    expect(pick(web.getBooleanDetails("equals", false))).toMatchObject({ value: true, variant: "yes", reason: "TARGETING_MATCH" });
    expect(pick(web.getStringDetails("string-static", ""))).toMatchObject({ value: "#00f", variant: "blue", reason: "STATIC" });
  });

  it("ERROR with FLAG_NOT_FOUND or TYPE_MISMATCH, and the caller's default", async () => {
    await WebOpenFeature.setContext({ targetingKey: "u", choice: "purple", name: "abc" });
    expect(pick(web.getBooleanDetails("no-such-flag", true))).toMatchObject({ value: true, reason: "ERROR", errorCode: "FLAG_NOT_FOUND" });
    expect(pick(web.getBooleanDetails("string-static", true))).toMatchObject({ value: true, reason: "ERROR", errorCode: "TYPE_MISMATCH" });
    expect(pick(web.getNumberDetails("bool-static", 3))).toMatchObject({ value: 3, reason: "ERROR", errorCode: "TYPE_MISMATCH" });
    // ResolveAll lists only flags with a value, as flagd does: flags whose evaluation failed
    // (GENERAL, PARSE_ERROR) and flags without a value (DISABLED, no default variant) are absent.
    for (const key of ["unknown-variant", "parse-error", "unknown-ref", "disabled", "code-default"]) {
      expect(pick(web.getBooleanDetails(key, true)), key).toMatchObject({ value: true, reason: "ERROR", errorCode: "FLAG_NOT_FOUND" });
    }
    // …while the same context resolves them normally once they have a value.
    await WebOpenFeature.setContext({ targetingKey: "u", choice: "on", name: 5 });
    expect(pick(web.getBooleanDetails("unknown-variant", false))).toMatchObject({ value: true, variant: "on", reason: "TARGETING_MATCH" });
    expect(pick(web.getBooleanDetails("parse-error", false))).toMatchObject({ value: true, variant: "on", reason: "TARGETING_MATCH" });
  });
});

describe("@openfeature/flagd-provider rpc resolver with its default cache", () => {
  it("caches STATIC values only, and a change event evicts exactly the edited flag", async () => {
    const provider = new FlagdProvider({ host: "127.0.0.1", port: h.flagd.evaluationPort!, resolverType: "rpc", selector: CACHE_ENV, deadlineMs: 2_000 });
    await OpenFeature.setProviderAndWait("rpc-cached", provider);
    const cached = OpenFeature.getClient("rpc-cached");
    const changes: string[][] = [];
    cached.addHandler(ProviderEvents.ConfigurationChanged, (d) => void changes.push(d?.flagsChanged ?? []));
    expect(pick(await cached.getStringDetails("string-static", ""))).toMatchObject({ value: "#00f", variant: "blue", reason: "STATIC" });
    expect(pick(await cached.getStringDetails("string-static", ""))).toMatchObject({ value: "#00f", variant: "blue", reason: "CACHED" });
    expect(pick(await cached.getBooleanDetails("bool-static", true))).toMatchObject({ value: false, reason: "STATIC" });
    expect(pick(await cached.getBooleanDetails("bool-static", true))).toMatchObject({ value: false, reason: "CACHED" });
    for (let i = 0; i < 2; i++) {
      expect(pick(await cached.getBooleanDetails("equals", false, { targetingKey: "u", plan: "pro" }))).toMatchObject({
        value: true,
        reason: "TARGETING_MATCH",
      });
    }

    const edited = structuredClone(fixture) as { flags: Record<string, { defaultVariant?: string | null }> };
    edited.flags["string-static"].defaultVariant = "red";
    await h.put(snapshotOf(edited as typeof fixture, { environmentId: CACHE_ENV, version: 2 }));
    await eventually(() => changes.some((c) => c.includes("string-static")), 5_000, "change event naming string-static");
    expect(changes.flat()).not.toContain("bool-static");
    expect(pick(await cached.getStringDetails("string-static", ""))).toMatchObject({ value: "#f00", variant: "red", reason: "STATIC" });
    expect(pick(await cached.getStringDetails("string-static", ""))).toMatchObject({ value: "#f00", variant: "red", reason: "CACHED" });
    // Not edited, so not evicted.
    expect(pick(await cached.getBooleanDetails("bool-static", true))).toMatchObject({ value: false, reason: "CACHED" });
    // The environment the other providers read was not touched.
    expect(pick(await rpc.getStringDetails("string-static", ""))).toMatchObject({ value: "#00f", reason: "STATIC" });
  });
});
