/**
 * The unmodified OpenFeature flagd providers honour a holdout: the holdout's rule is plain flagd
 * JSON Logic (a `fractional` over the holdout's salted key, ahead of the flag's rules), so the
 * rpc resolver (flagd.evaluation.v2) and the in-process resolver (flagd.sync.v1, evaluating in
 * the caller) both serve exactly the held-out units the default, like Vane's engine — and so does
 * the unmodified OFREP provider against the evaluator's OFREP endpoint.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { FlagdProvider } from "@openfeature/flagd-provider";
import { OFREPProvider } from "@openfeature/ofrep-provider";
import { OpenFeature, type Client } from "@openfeature/server-sdk";
import { createTestTokens, eventually, snapshotOf, startEvaluator, type EvaluatorHarness } from "./harness.ts";
import { isHeldOut } from "../holdout-exposures.ts";
import { heldOutFlagSet } from "./holdout-fixture.ts";

const ENV = "env-holdout";
const HOLDOUT = "3f2c1b0a-9e8d-4c7b-a6f5-e4d3c2b1a090";
let h: EvaluatorHarness;
const clients: Record<string, Client> = {};

beforeAll(async () => {
  const tokens = await createTestTokens();
  h = await startEvaluator({ verifier: tokens.verifier });
  await h.put(snapshotOf(heldOutFlagSet(HOLDOUT, 2500), { environmentId: ENV, version: 1 }));
  await eventually(() => h.module.store.get(ENV), 5_000, "snapshot loaded");
  for (const [name, port, resolverType] of [
    ["holdout-rpc", h.flagd.evaluationPort!, "rpc"],
    ["holdout-in-process", h.flagd.syncPort!, "in-process"],
  ] as const) {
    await OpenFeature.setProviderAndWait(
      name,
      new FlagdProvider({ host: "127.0.0.1", port, resolverType, selector: ENV, cache: "disabled", deadlineMs: 2_000 }),
    );
    clients[name] = OpenFeature.getClient(name);
  }
  const server = await tokens.sign({ sub: "k1", org: "org-1", prj: "prj-1", env: ENV, kind: "server" });
  await OpenFeature.setProviderAndWait("holdout-ofrep", new OFREPProvider({ baseUrl: h.baseUrl, headers: [["Authorization", `Bearer ${server}`]] }));
  clients["holdout-ofrep"] = OpenFeature.getClient("holdout-ofrep");
}, 30_000);

afterAll(async () => {
  await OpenFeature.close();
  await h?.close();
});

describe.each(["holdout-rpc", "holdout-in-process", "holdout-ofrep"])("unmodified OpenFeature provider (%s)", (name) => {
  it("serves held-out units the default on every flag, and everyone else as before", async () => {
    let held = 0;
    for (let i = 0; i < 200; i++) {
      const targetingKey = `member-${i}`;
      const out = isHeldOut(HOLDOUT, 2500, targetingKey);
      held += out ? 1 : 0;
      for (const flag of ["launched", "split"]) {
        const d = await clients[name].getStringDetails(flag, "code-default", { targetingKey });
        expect([flag, targetingKey, d.value, d.reason]).toEqual(out ? [flag, targetingKey, "off", "DEFAULT"] : [flag, targetingKey, "on", "TARGETING_MATCH"]);
      }
    }
    expect(held).toBeGreaterThan(20); // both arms were exercised
    expect(held).toBeLessThan(80);
  });
});
