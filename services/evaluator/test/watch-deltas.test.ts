import { setMaxListeners } from "node:events";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { FlagdProvider } from "@openfeature/flagd-provider";
import { OpenFeature, ProviderEvents } from "@openfeature/server-sdk";
import { EvaluationService, type WatchResponse } from "#gen/vane/evaluation/v1/evaluation_service_pb.js";
import type { FlagDefinition, FlagSetDefinition, JsonValue } from "#engine";
import { createTestTokens, eventually, snapshotOf, startEvaluator, type EvaluatorHarness } from "./harness.ts";

const ENV = "env-deltas";
const CLIENT_VISIBLE = ["vip", "banner"];
let h: EvaluatorHarness;
let serverKey: string;
let clientKey: string;
let version = 0;
const abort = new AbortController();
setMaxListeners(0, abort.signal);

/** vip: on for the listed keys; banner: everyone's; quiet: everyone's, server keys only. */
function flags(vip: string[], banner = "a", quiet = "off"): FlagSetDefinition {
  const bool = { on: true, off: false };
  return {
    flags: {
      vip: { state: "ENABLED", variants: bool, defaultVariant: "off", targeting: { if: [{ in: [{ var: "targetingKey" }, vip] }, "on", null] } as JsonValue },
      banner: { state: "ENABLED", variants: { a: "a", b: "b" }, defaultVariant: banner },
      quiet: { state: "ENABLED", variants: bool, defaultVariant: quiet },
    },
  };
}
const put = async (def: FlagSetDefinition) => {
  await h.put(snapshotOf(def, { environmentId: ENV, version: ++version, clientVisible: CLIENT_VISIBLE }));
  return BigInt(version);
};
const values = (m: WatchResponse) => Object.fromEntries(m.evaluations.map((e) => [e.flagKey, e.value?.kind.value]));

beforeAll(async () => {
  const tokens = await createTestTokens();
  h = await startEvaluator({ verifier: tokens.verifier });
  serverKey = await tokens.sign({ sub: "k1", org: "org-1", prj: "prj-1", env: ENV, kind: "server" });
  clientKey = await tokens.sign({ sub: "k2", org: "org-1", prj: "prj-1", env: ENV, kind: "client" });
  await put(flags(["alice"]));
  await eventually(() => h.module.store.get(ENV), 5_000, "snapshot loaded");
});
afterAll(async () => {
  abort.abort();
  await OpenFeature.close();
  await h?.close();
});

describe("Watch with deltas", () => {
  it("sends each stream only what changed for its context, over gRPC and Connect", async () => {
    const watch = (token: string, protocol: "grpc" | "connect", targetingKey: string) =>
      h.client(EvaluationService, token, protocol).watch({ context: { targetingKey }, deltas: true }, { signal: abort.signal })[Symbol.asyncIterator]();
    const next = async (s: AsyncIterator<WatchResponse>) => (await s.next()).value as WatchResponse;
    const alice = watch(serverKey, "grpc", "alice");
    const aliceAgain = watch(serverKey, "grpc", "alice");
    const bob = watch(clientKey, "connect", "bob");
    const firsts = await Promise.all([alice, aliceAgain, bob].map(next));
    expect(firsts.map((m) => m.delta)).toEqual([false, false, false]);
    expect(values(firsts[0])).toEqual({ vip: true, banner: "a", quiet: false });
    expect(values(firsts[1])).toEqual(values(firsts[0]));
    expect(values(firsts[2])).toEqual({ vip: false, banner: "a" });

    // vip moves from alice to carol: alice's result changes, bob's does not; banner changes for both.
    const v2 = await put(flags(["carol"], "b"));
    const [a2, a2again, b2] = await Promise.all([alice, aliceAgain, bob].map(next));
    for (const m of [a2, a2again]) {
      expect(m).toMatchObject({ delta: true, version: v2 });
      expect(values(m)).toEqual({ vip: false, banner: "b" });
    }
    expect(b2).toMatchObject({ delta: true, version: v2, changedFlagKeys: ["banner"] });
    expect(values(b2)).toEqual({ banner: "b" });

    // Nothing changes for alice or bob (vip moves to dave; quiet is hidden from client keys):
    // bob gets nothing, alice only quiet; then banner changes for both.
    await put(flags(["dave"], "b", "on"));
    const v4 = await put(flags(["dave"], "a", "on"));
    const [a3, a4] = [await next(alice), await next(alice)];
    expect(values(a3)).toEqual({ quiet: true });
    expect(a4).toMatchObject({ version: v4, changedFlagKeys: ["banner"] });
    const b4 = await next(bob);
    expect(b4).toMatchObject({ delta: true, version: v4, changedFlagKeys: ["banner"], removedFlagKeys: [] });

    // A new stream (a client reconnecting) starts from the full state.
    const again = watch(clientKey, "grpc", "bob");
    const full = await next(again);
    expect(full).toMatchObject({ delta: false, version: v4, changedFlagKeys: ["vip", "banner"] });
    expect(values(full)).toEqual({ vip: false, banner: "a" });

    // A flag hidden from client keys is removed from their state.
    const v5 = await put({ flags: { banner: (flags([]).flags as Record<string, FlagDefinition>).banner } });
    const [b5, again5] = await Promise.all([bob, again].map(next));
    for (const m of [b5, again5]) expect(m).toMatchObject({ delta: true, version: v5, evaluations: [], removedFlagKeys: ["vip"] });
  });
});

describe("flagd streams shared between providers", () => {
  it("bring a change to every rpc and in-process provider of an environment", async () => {
    const changes: string[][] = [];
    for (const [i, resolverType] of (["rpc", "rpc", "in-process", "in-process"] as const).entries()) {
      const port = resolverType === "rpc" ? h.flagd.evaluationPort! : h.flagd.syncPort!;
      await OpenFeature.setProviderAndWait(
        `p${i}`,
        new FlagdProvider({ host: "127.0.0.1", port, resolverType, selector: ENV, cache: "disabled", deadlineMs: 2_000 }),
      );
      changes.push([]);
      OpenFeature.getClient(`p${i}`).addHandler(ProviderEvents.ConfigurationChanged, (d) => void changes[i].push(...(d?.flagsChanged ?? [])));
    }
    await put(flags([], "b"));
    await eventually(() => changes.every((c) => c.includes("banner")) || undefined, 10_000, "every provider heard of the change");
    for (let i = 0; i < 4; i++) expect(await OpenFeature.getClient(`p${i}`).getStringValue("banner", "")).toBe("b");
  });
});
