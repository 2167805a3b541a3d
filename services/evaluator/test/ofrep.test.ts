/**
 * OFREP on the evaluator's main port: the unmodified @openfeature/ofrep-provider (through the
 * OpenFeature server SDK) resolves Vane flags of every type, with reasons, variants and errors;
 * raw requests check what the provider does not show — bulk evaluation with its ETag and 304,
 * the error shapes and statuses, credentials (none, wrong, a person's token, a client key's
 * visibility), bad bodies, CORS.
 */
import { OFREPProvider } from "@openfeature/ofrep-provider";
import { OpenFeature } from "@openfeature/server-sdk";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createTestTokens, eventually, fixture, pick, snapshotOf, startEvaluator, type EvaluatorHarness } from "./harness.ts";

const ENV = "env-ofrep";
let h: EvaluatorHarness;
let server: string;
let clientKey: string;
let person: string;
let tokens: Awaited<ReturnType<typeof createTestTokens>>;

const post = (path: string, body: unknown, headers: Record<string, string> = {}) =>
  fetch(`${h.baseUrl}${path}`, {
    method: "POST",
    headers: { "content-type": "application/json", ...headers },
    body: typeof body === "string" ? body : JSON.stringify(body),
  });

beforeAll(async () => {
  tokens = await createTestTokens();
  h = await startEvaluator({ verifier: tokens.verifier, flagd: false, env: { VANE_CORS_ORIGINS: "https://app.example" } });
  server = await tokens.sign({ sub: "k1", org: "org-1", prj: "prj-1", env: ENV, kind: "server" });
  clientKey = await tokens.sign({ sub: "k2", org: "org-1", prj: "prj-1", env: ENV, kind: "client" });
  person = await tokens.sign({ sub: "u1", org: "org-1", role: "owner", kind: "user" });
  await h.put(snapshotOf(fixture, { environmentId: ENV, version: 1, clientVisible: ["bool-static", "in-list"] }));
  await eventually(() => h.module.store.get(ENV), 5_000, "snapshot loaded");
});
afterAll(async () => {
  await OpenFeature.close();
  await h?.close();
});

describe("OFREP through the unmodified OpenFeature provider", () => {
  it("resolves every type with reasons and variants, and errors as OpenFeature errors", async () => {
    await OpenFeature.setProviderAndWait("ofrep", new OFREPProvider({ baseUrl: h.baseUrl, headers: [["Authorization", `Bearer ${server}`]] }));
    const c = OpenFeature.getClient("ofrep");
    expect(pick(await c.getBooleanDetails("bool-static", true))).toEqual({ value: false, variant: "off", reason: "STATIC", errorCode: undefined });
    expect(pick(await c.getStringDetails("in-list", "x", { targetingKey: "u", country: "de" }))).toEqual({
      value: "EU",
      variant: "eu",
      reason: "TARGETING_MATCH",
      errorCode: undefined,
    });
    expect((await c.getNumberDetails("int-static", 0)).value).toBe(42);
    expect((await c.getNumberDetails("float-static", 0)).value).toBe(2.5);
    expect((await c.getObjectDetails("object-static", {})).value).toEqual({ size: 1, tags: ["x"] });
    const missing = await c.getBooleanDetails("nope", true);
    expect([missing.value, missing.reason, missing.errorCode]).toEqual([true, "ERROR", "FLAG_NOT_FOUND"]);
    const mismatch = await c.getStringDetails("bool-static", "fallback");
    expect([mismatch.value, mismatch.errorCode]).toEqual(["fallback", "TYPE_MISMATCH"]);
    const parse = await c.getBooleanDetails("parse-error", true, { name: "abc" });
    expect([parse.value, parse.reason]).toEqual([true, "ERROR"]);
  });
});

describe("OFREP over HTTP", () => {
  const auth = () => ({ authorization: `Bearer ${server}` });

  it("answers one flag with OFREP's success shape, and unknown flags with 404 FLAG_NOT_FOUND", async () => {
    const ok = await post("/ofrep/v1/evaluate/flags/in-list", { context: { targetingKey: "u", country: "fr" } }, auth());
    expect(ok.status).toBe(200);
    expect(ok.headers.get("content-type")).toMatch(/^application\/json/);
    expect(await ok.json()).toEqual({ key: "in-list", value: "EU", reason: "TARGETING_MATCH", variant: "eu", metadata: { flagSetId: "fixture" } });
    const missing = await post("/ofrep/v1/evaluate/flags/nope", {}, auth());
    expect(missing.status).toBe(404);
    expect(await missing.json()).toMatchObject({ key: "nope", errorCode: "FLAG_NOT_FOUND" });
  });

  it("answers a disabled flag with reason DISABLED and no value, so the caller's default applies", async () => {
    const r = await post("/ofrep/v1/evaluate/flags/disabled", {}, auth());
    expect(r.status).toBe(200);
    const body = (await r.json()) as Record<string, unknown>;
    expect(body).toMatchObject({ key: "disabled", reason: "DISABLED" });
    expect("value" in body).toBe(false);
  });

  it("evaluates every flag in bulk with an ETag, and answers 304 while nothing changed for that context", async () => {
    const first = await post("/ofrep/v1/evaluate/flags", { context: { targetingKey: "u", country: "de" } }, auth());
    expect(first.status).toBe(200);
    const etag = first.headers.get("etag");
    expect(etag).toMatch(/^"[\w.-]+"$/);
    const { flags } = (await first.json()) as { flags: { key: string; value?: unknown; errorCode?: string }[] };
    expect(flags.find((f) => f.key === "in-list")?.value).toBe("EU");
    expect(flags.map((f) => f.key)).toEqual(Object.keys(fixture.flags));
    const again = await post("/ofrep/v1/evaluate/flags", { context: { targetingKey: "u", country: "de" } }, { ...auth(), "if-none-match": etag! });
    expect(again.status).toBe(304);
    expect(await again.text()).toBe("");
    // Another context answers differently: a full answer, another tag.
    const other = await post("/ofrep/v1/evaluate/flags", { context: { targetingKey: "u", country: "us" } }, { ...auth(), "if-none-match": etag! });
    expect(other.status).toBe(200);
    expect(other.headers.get("etag")).not.toBe(etag);
    // A new version that changes this context's answers: a full answer again.
    const changed = structuredClone(fixture);
    (changed.flags as Record<string, { defaultVariant: string }>)["bool-static"].defaultVariant = "on";
    await h.put(snapshotOf(changed, { environmentId: ENV, version: 2, clientVisible: ["bool-static", "in-list"] }));
    await eventually(() => h.module.store.get(ENV)?.version === 2, 5_000, "version 2 loaded");
    const after = await post("/ofrep/v1/evaluate/flags", { context: { targetingKey: "u", country: "de" } }, { ...auth(), "if-none-match": etag! });
    expect(after.status).toBe(200);
    await h.put(snapshotOf(fixture, { environmentId: ENV, version: 3, clientVisible: ["bool-static", "in-list"] }));
    await eventually(() => h.module.store.get(ENV)?.version === 3, 5_000, "version 3 loaded");
  });

  it("answers a revalidation evaluating only the flags whose rules read the clock, whatever the order of the context's keys", async () => {
    const evaluations = async () =>
      (await (await fetch(`${h.baseUrl}/metrics`)).text())
        .split("\n")
        .filter((l) => l.startsWith("vane_evaluator_evaluations") && l.includes('api="ofrep_all"'))
        .reduce((n, l) => n + Number(l.split(" ").at(-1)), 0);
    const clockReaders = Object.values(fixture.flags as Record<string, { targeting?: unknown }>).filter((f) =>
      JSON.stringify(f.targeting ?? null).includes("$flagd.timestamp"),
    ).length;
    expect(clockReaders).toBeGreaterThan(0);
    const first = await post("/ofrep/v1/evaluate/flags", { context: { targetingKey: "u", country: "de", plan: { tier: "pro", seats: 3 } } }, auth());
    const etag = first.headers.get("etag")!;
    const before = await evaluations();
    const again = await post(
      "/ofrep/v1/evaluate/flags",
      { context: { plan: { seats: 3, tier: "pro" }, country: "de", targetingKey: "u" } },
      { ...auth(), "if-none-match": etag },
    );
    expect(again.status).toBe(304);
    expect((await evaluations()) - before).toBe(clockReaders);
    // Without the tag, every flag is evaluated (the counter above does count them), the clock's
    // flags once more for the tag.
    await post("/ofrep/v1/evaluate/flags", { context: { targetingKey: "u", country: "de" } }, auth());
    expect((await evaluations()) - before).toBe(2 * clockReaders + Object.keys(fixture.flags).length);
  });

  it("changes the tag when a flag that reads the clock changes its answer, with no new version", async () => {
    const launch = Math.floor(Date.now() / 1000) + 2;
    const clock = {
      flags: {
        launched: {
          state: "ENABLED",
          variants: { on: true, off: false },
          defaultVariant: "off",
          targeting: { if: [{ ">=": [{ var: "$flagd.timestamp" }, launch] }, "on", "off"] },
        },
      },
    } as unknown as typeof fixture;
    await h.put(snapshotOf(clock, { environmentId: "env-clock", version: 1 }));
    await eventually(() => h.module.store.get("env-clock"), 5_000, "clock snapshot loaded");
    const key = await tokens.sign({ sub: "k3", org: "org-1", prj: "prj-1", env: "env-clock", kind: "server" });
    const first = await post("/ofrep/v1/evaluate/flags", {}, { authorization: `Bearer ${key}` });
    const etag = first.headers.get("etag")!;
    expect(((await first.json()) as { flags: { value: boolean }[] }).flags[0].value).toBe(false);
    // Revalidated until the launch time passes: then a full answer with another tag.
    const after = await eventually(
      async () => {
        const r = await post("/ofrep/v1/evaluate/flags", {}, { authorization: `Bearer ${key}`, "if-none-match": etag });
        return r.status === 200 ? r : undefined;
      },
      10_000,
      "a full answer once the flag launches",
    );
    expect(after.headers.get("etag")).not.toBe(etag);
    expect(((await after.json()) as { flags: { value: boolean }[] }).flags[0].value).toBe(true);
  });

  it("shows a client key only the client-visible flags", async () => {
    const bulk = await post("/ofrep/v1/evaluate/flags", {}, { authorization: `Bearer ${clientKey}` });
    expect(((await bulk.json()) as { flags: { key: string }[] }).flags.map((f) => f.key).sort()).toEqual(["bool-static", "in-list"]);
    expect((await post("/ofrep/v1/evaluate/flags/int-static", {}, { authorization: `Bearer ${clientKey}` })).status).toBe(404);
  });

  it("refuses missing and wrong credentials with 401, and credentials that name no environment with 403", async () => {
    const none = await post("/ofrep/v1/evaluate/flags/bool-static", {});
    expect(none.status).toBe(401);
    expect(((await none.json()) as { errorDetails: string }).errorDetails).toMatch(/API key/);
    expect((await post("/ofrep/v1/evaluate/flags/bool-static", {}, { authorization: "Bearer not-a-token" })).status).toBe(401);
    expect((await post("/ofrep/v1/evaluate/flags", {}, { authorization: `Bearer ${person}` })).status).toBe(403);
  });

  it("answers bad bodies and contexts with 400 INVALID_CONTEXT, and other methods with 405", async () => {
    for (const body of ["{not json", "[1,2]", JSON.stringify({ context: "x" }), JSON.stringify({ context: { a: "x".repeat(20_000) } })]) {
      const r = await post("/ofrep/v1/evaluate/flags/bool-static", body, auth());
      expect(r.status, body.slice(0, 20)).toBe(400);
      expect(await r.json()).toMatchObject({ key: "bool-static", errorCode: "INVALID_CONTEXT" });
    }
    const bulk = await post("/ofrep/v1/evaluate/flags", "{not json", auth());
    expect(bulk.status).toBe(400);
    expect(await bulk.json()).toMatchObject({ errorCode: "INVALID_CONTEXT" });
    expect((await fetch(`${h.baseUrl}/ofrep/v1/evaluate/flags`, { headers: auth() })).status).toBe(405);
    // The process is still healthy.
    expect((await post("/ofrep/v1/evaluate/flags/bool-static", {}, auth())).status).toBe(200);
  });

  it("lets a browser page call it: CORS preflight allows the credential headers and exposes the ETag", async () => {
    const pre = await fetch(`${h.baseUrl}/ofrep/v1/evaluate/flags`, {
      method: "OPTIONS",
      headers: {
        origin: "https://app.example",
        "access-control-request-method": "POST",
        "access-control-request-headers": "authorization, content-type, if-none-match",
      },
    });
    expect(pre.status).toBe(204);
    expect(pre.headers.get("access-control-allow-headers")).toMatch(/If-None-Match/);
    const r = await post("/ofrep/v1/evaluate/flags", {}, { ...auth(), origin: "https://app.example" });
    expect(r.headers.get("access-control-allow-origin")).toBe("https://app.example");
    expect(r.headers.get("access-control-expose-headers")).toMatch(/ETag/);
  });
});
