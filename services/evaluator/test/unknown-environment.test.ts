/**
 * An environment the evaluator does not hold: UNAVAILABLE only while the initial load is in
 * progress (it may still arrive); once the store holds everything there is, NOT_FOUND on every
 * surface, streams included (flagd answers an unknown selector at once; a provider must not
 * wait for an init timeout), and another organization's environment looks exactly like it.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Code, ConnectError } from "@connectrpc/connect";
import { EvaluationService } from "#gen/vane/evaluation/v1/evaluation_service_pb.js";
import { createChangeHub } from "../snapshots/change-hub.ts";
import { createSnapshotStore, versionFromSnapshot } from "../snapshots/store.ts";
import { freePort } from "#dev/local-infra.ts";
import { createTestTokens, envelope, eventually, fixture, snapshotOf, startEvaluator, type EvaluatorHarness } from "./harness.ts";

const ENV = "env-known";
let h: EvaluatorHarness;
let tokens: Awaited<ReturnType<typeof createTestTokens>>;

beforeAll(async () => {
  tokens = await createTestTokens();
  h = await startEvaluator({ verifier: tokens.verifier });
  await h.put(snapshotOf(fixture, { environmentId: ENV, version: 1 }));
  await eventually(() => h.module.store.get(ENV) && h.module.store.initialLoadDone, 5_000, "initial load done");
});
afterAll(async () => {
  await h?.close();
});

const post = (port: number, path: string, body: unknown, headers: Record<string, string> = {}) =>
  fetch(`http://127.0.0.1:${port}${path}`, { method: "POST", headers: { "content-type": "application/json", ...headers }, body: JSON.stringify(body) });

/** Opens a Connect JSON server stream and reads it to its end (or gives up after `ms`). */
async function readStream(port: number, path: string, headers: Record<string, string>, ms = 10_000): Promise<{ text: string; ended: boolean }> {
  const abort = new AbortController();
  // Headers may only come with the first message, so the clock covers the request too.
  const timer = setTimeout(() => abort.abort(), ms);
  let text = "";
  try {
    const res = await fetch(`http://127.0.0.1:${port}${path}`, {
      method: "POST",
      headers: { "content-type": "application/connect+json", ...headers },
      body: envelope("{}"),
      signal: abort.signal,
    });
    const reader = res.body!.getReader();
    for (;;) {
      const { done, value } = await reader.read();
      if (done) return { text, ended: true };
      text += new TextDecoder().decode(value);
    }
  } catch {
    return { text, ended: false };
  } finally {
    clearTimeout(timer);
  }
}

describe("change hub", () => {
  it("says unknown once the initial load is done without the environment, and loaded when it arrives", async () => {
    const store = createSnapshotStore();
    const hub = createChangeHub(store);
    const signal = new AbortController().signal;
    const waiting = hub.loaded("e", signal);
    store.apply(versionFromSnapshot(snapshotOf(fixture, { environmentId: "e", version: 1 })));
    expect(await waiting).toBe("loaded");
    const pending = hub.loaded("nope", signal);
    store.markInitialLoadDone();
    expect(await pending).toBe("unknown");
    expect(await hub.loaded("nope", signal)).toBe("unknown");
    const abort = new AbortController();
    const aborted = createChangeHub(createSnapshotStore()).loaded("x", abort.signal);
    abort.abort();
    expect(await aborted).toBe("aborted");
    hub.stop();
  });
});

describe("flagd ports, after the initial load", () => {
  it.each(["flagd.evaluation.v1.Service", "flagd.evaluation.v2.Service"])(
    "%s answers an unknown selector with NOT_FOUND saying what to send",
    async (service) => {
      const res = await post(h.flagd.evaluationPort!, `/${service}/ResolveBoolean`, { flagKey: "bool-static" }, { "flagd-selector": "env-nope" });
      expect(res.status).toBe(404);
      const body = (await res.json()) as { code: string; message: string };
      expect(body.code).toBe("not_found");
      expect(body.message).toContain('"env-nope"');
      expect(body.message).toMatch(/unknown/);
      expect(body.message).toMatch(/environment id/);
    },
  );

  it("answers ResolveAll, FetchAllFlags and the default environment with NOT_FOUND too", async () => {
    const all = await post(h.flagd.evaluationPort!, "/flagd.evaluation.v1.Service/ResolveAll", {}, { "flagd-selector": "environment=env-nope" });
    expect(await all.json()).toMatchObject({ code: "not_found" });
    const fetched = await post(h.flagd.syncPort!, "/flagd.sync.v1.FlagSyncService/FetchAllFlags", { selector: "env-nope" });
    expect(await fetched.json()).toMatchObject({ code: "not_found" });
  });

  it("fails EventStream and SyncFlags at once with NOT_FOUND instead of hanging", async () => {
    // A stream that hangs never ends by itself: readStream gives up after its window (ended: false).
    for (const [port, path] of [
      [h.flagd.evaluationPort!, "/flagd.evaluation.v1.Service/EventStream"],
      [h.flagd.evaluationPort!, "/flagd.evaluation.v2.Service/EventStream"],
      [h.flagd.syncPort!, "/flagd.sync.v1.FlagSyncService/SyncFlags"],
    ] as const) {
      const { text, ended } = await readStream(port, path, { "flagd-selector": "env-nope" });
      expect(ended).toBe(true);
      expect(text).toContain('"code":"not_found"');
      expect(text).toContain("env-nope");
      expect(text).not.toContain("provider_ready");
    }
  });

  it("serves an environment created after the initial load (NOT_FOUND is not remembered)", async () => {
    const before = await post(
      h.flagd.evaluationPort!,
      "/flagd.evaluation.v2.Service/ResolveBoolean",
      { flagKey: "bool-static" },
      { "flagd-selector": "env-later" },
    );
    expect(before.status).toBe(404);
    await h.put(snapshotOf(fixture, { environmentId: "env-later", version: 1 }));
    await eventually(() => h.module.store.get("env-later"), 5_000, "env-later loaded");
    const after = await post(
      h.flagd.evaluationPort!,
      "/flagd.evaluation.v2.Service/ResolveBoolean",
      { flagKey: "bool-static" },
      { "flagd-selector": "env-later" },
    );
    expect(await after.json()).toMatchObject({ reason: "STATIC", variant: "off" });
  });

  it("names the key's environment when a token's environment is unknown", async () => {
    const key = await tokens.sign({ sub: "k", env: "env-deleted", kind: "server" });
    const res = await post(
      h.flagd.evaluationPort!,
      "/flagd.evaluation.v2.Service/ResolveBoolean",
      { flagKey: "bool-static" },
      { authorization: `Bearer ${key}` },
    );
    const body = (await res.json()) as { code: string; message: string };
    expect(body).toMatchObject({ code: "not_found" });
    expect(body.message).toContain('"env-deleted"');
  });
});

describe("vane.evaluation.v1, after the initial load", () => {
  const failure = async (p: Promise<unknown>) => {
    const err = await p.then(
      () => undefined,
      (e: unknown) => ConnectError.from(e),
    );
    return { code: err?.code, message: err?.rawMessage };
  };

  it("answers an unknown environment with NOT_FOUND, another organization's exactly alike", async () => {
    const other = await tokens.sign({ sub: "u2", org: "org-2", role: "owner", kind: "user" });
    const c = h.client(EvaluationService, other);
    const foreign = await failure(c.evaluate({ flagKey: "bool-static", environmentId: ENV }));
    const missing = await failure(c.evaluate({ flagKey: "bool-static", environmentId: "env-nope" }));
    expect(foreign.code).toBe(Code.NotFound);
    expect(missing.code).toBe(Code.NotFound);
    expect(foreign.message?.replace(ENV, "<id>")).toBe(missing.message?.replace("env-nope", "<id>"));
    const key = await tokens.sign({ sub: "k", org: "org-1", prj: "prj-1", env: "env-nope", kind: "server" });
    expect((await failure(h.client(EvaluationService, key).evaluate({ flagKey: "bool-static" }))).code).toBe(Code.NotFound);
    const watch = (async () => {
      for await (const _ of h.client(EvaluationService, key).watch({})) return;
    })();
    expect((await failure(watch)).code).toBe(Code.NotFound);
  });
});

describe("before the initial load", () => {
  it("answers UNAVAILABLE (same for any environment) and keeps streams waiting", async () => {
    const nowhere = `nats://127.0.0.1:${await freePort()}`;
    const cold = await startEvaluator({ natsUrl: nowhere, fixtures: false, verifier: tokens.verifier });
    try {
      expect(cold.module.store.initialLoadDone).toBe(false);
      const res = await post(
        cold.flagd.evaluationPort!,
        "/flagd.evaluation.v2.Service/ResolveBoolean",
        { flagKey: "bool-static" },
        { "flagd-selector": "env-nope" },
      );
      expect(res.status).toBe(503);
      expect(await res.json()).toMatchObject({ code: "unavailable" });
      const person = await tokens.sign({ sub: "u2", org: "org-2", role: "owner", kind: "user" });
      const err = await cold
        .client(EvaluationService, person)
        .evaluate({ flagKey: "x", environmentId: "env-nope" })
        .catch((e: unknown) => ConnectError.from(e));
      expect((err as ConnectError).code).toBe(Code.Unavailable);
      const { ended } = await readStream(cold.flagd.syncPort!, "/flagd.sync.v1.FlagSyncService/SyncFlags", { "flagd-selector": "env-nope" }, 500);
      expect(ended).toBe(false);
    } finally {
      await cold.close();
    }
  });
});
