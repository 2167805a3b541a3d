/**
 * The real, unmodified OpenFeature flagd providers against Vane's flagd ports: the server
 * provider's rpc resolver (flagd.evaluation.v2 over gRPC) and in-process resolver
 * (flagd.sync.v1), and the web provider (flagd.evaluation.v1 over Connect JSON) in Node.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { FlagdProvider } from "@openfeature/flagd-provider";
import { FlagdWebProvider } from "@openfeature/flagd-web-provider";
import { OpenFeature, ProviderEvents, type Client } from "@openfeature/server-sdk";
import { OpenFeature as WebOpenFeature, ProviderEvents as WebEvents } from "@openfeature/web-sdk";
import { compileFlagSet } from "#engine";
import { createTestTokens, envelope, eventually, fixture, pick, snapshotOf, startEvaluator, type EvaluatorHarness } from "./harness.ts";

const ENV = "env-flagd";
let h: EvaluatorHarness;
let rpc: Client;
let inProcess: Client;
let clientToken: string;
const changes = { rpc: [] as string[][], inProcess: [] as string[][], web: 0 };
const engine = compileFlagSet(fixture);

beforeAll(async () => {
  const tokens = await createTestTokens();
  clientToken = await tokens.sign({ sub: "k", env: "env-flagd-client", kind: "client" });
  h = await startEvaluator({ env: { VANE_FLAGD_KEEPALIVE: "200ms" }, verifier: tokens.verifier });
  await h.put(snapshotOf(fixture, { environmentId: ENV, version: 1 }));
  await h.put(snapshotOf(fixture, { environmentId: "env-flagd-client", version: 1, clientVisible: ["bool-static", "split"] }));
  await eventually(() => h.module.store.get(ENV), 5_000, "snapshot loaded");
  await OpenFeature.setProviderAndWait(
    "rpc",
    new FlagdProvider({ host: "127.0.0.1", port: h.flagd.evaluationPort!, resolverType: "rpc", selector: ENV, cache: "disabled", deadlineMs: 2_000 }),
  );
  await OpenFeature.setProviderAndWait(
    "in-process",
    new FlagdProvider({ host: "127.0.0.1", port: h.flagd.syncPort!, resolverType: "in-process", selector: ENV, deadlineMs: 2_000 }),
  );
  rpc = OpenFeature.getClient("rpc");
  inProcess = OpenFeature.getClient("in-process");
  rpc.addHandler(ProviderEvents.ConfigurationChanged, (d) => void changes.rpc.push(d?.flagsChanged ?? []));
  inProcess.addHandler(ProviderEvents.ConfigurationChanged, (d) => void changes.inProcess.push(d?.flagsChanged ?? []));
}, 30_000);

afterAll(async () => {
  await OpenFeature.close();
  await WebOpenFeature.close();
  await h?.close();
});

describe.each([
  ["rpc resolver (flagd.evaluation.v2)", () => rpc],
  ["in-process resolver (flagd.sync.v1)", () => inProcess],
])("@openfeature/flagd-provider, %s", (_name, client) => {
  it("resolves every type with reason STATIC", async () => {
    expect(pick(await client().getBooleanDetails("bool-static", true))).toMatchObject({ value: false, variant: "off", reason: "STATIC" });
    expect(pick(await client().getStringDetails("string-static", ""))).toMatchObject({ value: "#00f", variant: "blue", reason: "STATIC" });
    expect(pick(await client().getNumberDetails("float-static", 0))).toMatchObject({ value: 2.5, variant: "high", reason: "STATIC" });
    expect(pick(await client().getNumberDetails("int-static", 0))).toMatchObject({ value: 42, variant: "big" });
    expect(pick(await client().getObjectDetails("object-static", {}))).toMatchObject({ value: { size: 1, tags: ["x"] }, variant: "a" });
  });

  it("gives DISABLED flags and flags without a default variant the code default", async () => {
    expect(pick(await client().getBooleanDetails("disabled", false))).toMatchObject({ value: false, reason: "DISABLED" });
    expect(pick(await client().getBooleanDetails("disabled", true))).toMatchObject({ value: true, reason: "DISABLED" });
    const codeDefault = await client().getBooleanDetails("code-default", true);
    expect(codeDefault.value).toBe(true);
    expect(codeDefault.reason).toBe("DEFAULT");
  });

  it("targets with every operator, and DEFAULT when nothing matches", async () => {
    const t = async (key: string, ctx: Record<string, unknown>) => pick(await client().getStringDetails(key, "dflt", { targetingKey: "u-1", ...ctx }));
    const b = async (key: string, ctx: Record<string, unknown>) => pick(await client().getBooleanDetails(key, false, { targetingKey: "u-1", ...ctx }));
    expect(await b("equals", { plan: "pro" })).toMatchObject({ value: true, variant: "yes", reason: "TARGETING_MATCH" });
    expect(await b("equals", { plan: "free" })).toMatchObject({ value: false, variant: "no", reason: "DEFAULT" });
    expect(await t("in-list", { country: "fr" })).toMatchObject({ value: "EU", reason: "TARGETING_MATCH" });
    expect(await t("in-list", { country: "us" })).toMatchObject({ value: "OTHER", reason: "TARGETING_MATCH" });
    expect(await b("starts-with", { email: "beta.ann@x.io" })).toMatchObject({ value: true, variant: "beta" });
    expect(await t("ends-with-ref", { email: "bo@vane.test" })).toMatchObject({ value: "staff", reason: "TARGETING_MATCH" });
    expect(await t("semver", { version: "2.1.0" })).toMatchObject({ value: "new" });
    expect(await t("semver", { version: "1.9.9" })).toMatchObject({ value: "old" });
    expect(await b("numeric", { age: 30 })).toMatchObject({ value: true, variant: "adult" });
  });

  it("splits fractionally, bucket for bucket like Vane's engine", async () => {
    const seen = new Set<string>();
    for (let i = 0; i < 60; i++) {
      const targetingKey = `user-${i}`;
      const d = await client().getStringDetails("split", "", { targetingKey });
      expect(d.variant).toBe(engine.evaluate("split", { targetingKey }).variant);
      seen.add(d.variant!);
    }
    expect(seen).toEqual(new Set(["a", "b", "c"]));
  });

  it("reports every error code", async () => {
    expect((await client().getBooleanDetails("no-such-flag", true)).errorCode).toBe("FLAG_NOT_FOUND");
    expect((await client().getBooleanDetails("string-static", true)).errorCode).toBe("TYPE_MISMATCH");
    const unknownVariant = await client().getBooleanDetails("unknown-variant", true, { targetingKey: "u", choice: "purple" });
    expect(unknownVariant).toMatchObject({ value: true, reason: "ERROR", errorCode: "GENERAL" });
  });
});

describe("flagd error statuses (rpc)", () => {
  it("maps PARSE_ERROR to DATA_LOSS, which the provider reports as PARSE_ERROR", async () => {
    const d = await rpc.getBooleanDetails("parse-error", true, { targetingKey: "u", name: "abc" });
    expect(d).toMatchObject({ value: true, reason: "ERROR", errorCode: "PARSE_ERROR" });
  });
});

describe("change events", () => {
  it("reach both resolvers naming the changed flag, and new values are served", async () => {
    const edited = structuredClone(fixture) as any;
    edited.flags["string-static"].defaultVariant = "red";
    await h.put(snapshotOf(edited, { environmentId: ENV, version: 2 }));
    await eventually(() => changes.rpc.some((c) => c.includes("string-static")), 5_000, "rpc change event");
    await eventually(() => changes.inProcess.some((c) => c.includes("string-static")), 5_000, "in-process change event");
    expect(changes.rpc.flat()).not.toContain("bool-static");
    expect((await rpc.getStringDetails("string-static", "")).value).toBe("#f00");
    expect((await inProcess.getStringDetails("string-static", "")).value).toBe("#f00");
  });
});

describe("@openfeature/flagd-web-provider (flagd.evaluation.v1 over Connect)", () => {
  it("loads every flag at once, resolves with reasons, and follows changes", async () => {
    const provider = new FlagdWebProvider({
      host: "127.0.0.1",
      port: h.flagd.evaluationPort!,
      tls: false,
      maxRetries: 3,
      interceptors: [(next) => (req) => (req.header.set("flagd-selector", ENV), next(req))],
    });
    await WebOpenFeature.setContext({ targetingKey: "user-3", plan: "pro", country: "nl" });
    await WebOpenFeature.setProviderAndWait(provider);
    const web = WebOpenFeature.getClient();
    web.addHandler(WebEvents.ConfigurationChanged, () => void changes.web++);
    expect(web.getBooleanDetails("bool-static", true)).toMatchObject({ value: false, variant: "off", reason: "STATIC" });
    expect(web.getBooleanDetails("equals", false)).toMatchObject({ value: true, variant: "yes", reason: "TARGETING_MATCH" });
    expect(web.getStringDetails("in-list", "")).toMatchObject({ value: "EU", reason: "TARGETING_MATCH" });
    expect(web.getStringDetails("split", "").variant).toBe(engine.evaluate("split", { targetingKey: "user-3" }).variant);
    expect(web.getNumberDetails("float-static", 0).value).toBe(2.5);
    expect(web.getObjectDetails("object-static", {}).value).toEqual({ size: 1, tags: ["x"] });
    // ResolveAll leaves out flags without a value, so the web provider reports them not found.
    expect(web.getBooleanDetails("disabled", true)).toMatchObject({ value: true, errorCode: "FLAG_NOT_FOUND" });
    expect(web.getBooleanDetails("string-static", true).errorCode).toBe("TYPE_MISMATCH");

    const edited = structuredClone(fixture) as any;
    edited.flags["bool-static"].defaultVariant = "on";
    await h.put(snapshotOf(edited, { environmentId: ENV, version: 3 }));
    await eventually(() => changes.web > 0, 5_000, "web change event");
    expect(web.getBooleanDetails("bool-static", false).value).toBe(true);
  });
});

describe("flagd wire details", () => {
  it("sends keep_alive on the event stream", async () => {
    const res = await fetch(`http://127.0.0.1:${h.flagd.evaluationPort}/flagd.evaluation.v1.Service/EventStream`, {
      method: "POST",
      headers: { "content-type": "application/connect+json", "flagd-selector": ENV },
      body: envelope("{}"),
    });
    const reader = res.body!.getReader();
    let text = "";
    while (!text.includes("keep_alive")) text += new TextDecoder().decode((await reader.read()).value);
    expect(text).toContain("provider_ready");
    await reader.cancel();
  });

  it("never names another organization's flag keys on an event stream without a selector", async () => {
    const res = await fetch(`http://127.0.0.1:${h.flagd.evaluationPort}/flagd.evaluation.v1.Service/EventStream`, {
      method: "POST",
      headers: { "content-type": "application/connect+json" },
      body: envelope("{}"),
    });
    const reader = res.body!.getReader();
    let text = "";
    while (!text.includes("provider_ready")) text += new TextDecoder().decode((await reader.read()).value);
    const other = { flags: { "other-tenant-secret": { state: "ENABLED", variants: { on: true }, defaultVariant: "on" } } } as const;
    await h.put(snapshotOf(other as never, { environmentId: "env-other-org", organizationId: "org-2", version: 1 }));
    while (!text.includes("configuration_change")) text += new TextDecoder().decode((await reader.read()).value);
    await reader.cancel();
    expect(text).not.toContain("other-tenant-secret");
  });

  it("gives client keys client-visible flags only, on both ports", async () => {
    const auth = { "content-type": "application/json", authorization: `Bearer ${clientToken}` };
    await eventually(() => h.module.store.get("env-flagd-client"), 5_000, "client env loaded");
    const all = await fetch(`http://127.0.0.1:${h.flagd.evaluationPort}/flagd.evaluation.v1.Service/ResolveAll`, { method: "POST", headers: auth, body: "{}" });
    expect(Object.keys(((await all.json()) as { flags: object }).flags).sort()).toEqual(["bool-static", "split"]);
    const hidden = await fetch(`http://127.0.0.1:${h.flagd.evaluationPort}/flagd.evaluation.v2.Service/ResolveString`, {
      method: "POST",
      headers: auth,
      body: JSON.stringify({ flagKey: "string-static" }),
    });
    expect(await hidden.json()).toMatchObject({ code: "not_found" });
    const sync = await fetch(`http://127.0.0.1:${h.flagd.syncPort}/flagd.sync.v1.FlagSyncService/FetchAllFlags`, { method: "POST", headers: auth, body: "{}" });
    const config = JSON.parse(((await sync.json()) as { flagConfiguration: string }).flagConfiguration);
    expect(Object.keys(config.flags).sort()).toEqual(["bool-static", "split"]);
  });

  it("answers CORS preflights for browsers", async () => {
    const res = await fetch(`http://127.0.0.1:${h.flagd.evaluationPort}/flagd.evaluation.v1.Service/ResolveAll`, {
      method: "OPTIONS",
      headers: { origin: "http://app.test", "access-control-request-method": "POST", "access-control-request-headers": "flagd-selector" },
    });
    expect(res.status).toBe(204);
    expect(res.headers.get("access-control-allow-headers")).toMatch(/Flagd-Selector/i);
  });

  it("emits zero values in Connect JSON, as flagd does", async () => {
    const res = await fetch(`http://127.0.0.1:${h.flagd.evaluationPort}/flagd.evaluation.v1.Service/ResolveBoolean`, {
      method: "POST",
      headers: { "content-type": "application/json", "flagd-selector": ENV },
      body: JSON.stringify({ flagKey: "disabled" }),
    });
    expect(await res.json()).toMatchObject({ value: false, reason: "DISABLED", variant: "" });
  });

  it("answers without an environment with FAILED_PRECONDITION, naming what to send", async () => {
    const res = await fetch(`http://127.0.0.1:${h.flagd.evaluationPort}/flagd.evaluation.v2.Service/ResolveBoolean`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ flagKey: "bool-static" }),
    });
    expect(res.status).toBe(400);
    expect(await res.json()).toMatchObject({ code: "failed_precondition" });
  });
});
