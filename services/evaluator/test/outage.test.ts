/**
 * NATS goes away: evaluation goes on from the last snapshot, staleness shows in the metrics,
 * exposures wait in a bounded buffer (dropping, and counting, what does not fit), and both the
 * snapshot watch and the exposures resume when NATS is back. And a cold start with nothing to
 * serve is not ready, saying why.
 */
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Code, ConnectError } from "@connectrpc/connect";
import { jetstreamManager } from "@nats-io/jetstream";
import { fromBinary } from "@bufbuild/protobuf";
import { EvaluationService } from "#gen/vane/evaluation/v1/evaluation_service_pb.js";
import { EventEnvelopeSchema } from "#gen/vane/events/v1/events_pb.js";
import { findNatsServer, freePort, startNatsServer, type StartedServer } from "#dev/local-infra.ts";
import { createTestTokens, eventually, fixture, snapshotOf, startEvaluator, type EvaluatorHarness } from "./harness.ts";

const ENV = "env-outage";
let dir: string;
let nats: StartedServer;
let h: EvaluatorHarness;
let token: string;
let binary: string;

beforeAll(async () => {
  binary = (await findNatsServer())!;
  dir = await mkdtemp(join(tmpdir(), "vane-eval-outage-"));
  nats = await startNatsServer({ binary, storeDir: dir });
  const tokens = await createTestTokens();
  token = await tokens.sign({ sub: "k", org: "org-1", prj: "prj-1", env: ENV, kind: "server" });
  h = await startEvaluator({
    natsUrl: nats.url,
    verifier: tokens.verifier,
    flagd: false,
    exposures: { capacity: 5, flushIntervalMs: 20, publishTimeoutMs: 500 },
  });
  await h.put(snapshotOf(fixture, { environmentId: ENV, version: 1, createTimeMs: Date.now() - 1_000 }));
  await eventually(() => h.module.store.get(ENV), 5_000, "snapshot loaded");
}, 30_000);

afterAll(async () => {
  await h?.close();
  await nats?.stop();
  await rm(dir, { recursive: true, force: true });
});

const metric = async (name: string) => {
  const text = await (await fetch(`${h.baseUrl}/metrics`)).text();
  const m = new RegExp(`^${name}(\\{[^}]*\\})? ([0-9.e+-]+)$`, "m").exec(text);
  return m ? Number(m[2]) : undefined;
};
const exposeFor = (unit: string) => h.client(EvaluationService, token).evaluate({ flagKey: "experiment", context: { targetingKey: unit } });

describe("NATS outage", () => {
  it("publishes exposures for experiment flags while NATS is up", async () => {
    const r = await exposeFor("unit-a");
    await exposeFor("unit-a"); // a repeat: suppressed
    await eventually(() => h.module.exposures.stats().published === 1, 5_000, "exposure published");
    expect(h.module.exposures.stats().suppressed).toBe(1);
    const jsm = await jetstreamManager(h.nc!);
    const msg = await jsm.streams.getMessage(h.stream, { seq: 1 });
    const event = fromBinary(EventEnvelopeSchema, msg!.data);
    expect(event).toMatchObject({ organizationId: "org-1", projectId: "prj-1", environmentId: ENV });
    expect(event.payload.value).toMatchObject({ flagKey: "experiment", experimentId: "exp-1", unitKey: "unit-a", variant: r.evaluation?.variant });
    expect(msg!.subject).toBe(`vane.events_${h.stream.toLowerCase()}.${ENV}.exposure`);
    expect(msg!.header?.get("Nats-Msg-Id")).toBe(event.eventId);
  });

  it("keeps evaluating from the last snapshot, reports growing staleness, buffers and drops exposures", async () => {
    await nats.stop();
    await eventually(() => h.module.kvSource!.status().live === false, 5_000, "feed not live");
    const r = await h.client(EvaluationService, token).evaluate({ flagKey: "in-list", context: { country: "de" } });
    expect(r.evaluation?.value?.kind).toEqual({ case: "stringValue", value: "EU" });
    expect(r.version).toBe(1n);
    for (let i = 0; i < 8; i++) await exposeFor(`unit-down-${i}`);
    expect(h.module.exposures.stats()).toMatchObject({ buffered: 5, dropped: 3 });
    const age1 = (await metric("vane_evaluator_snapshot_age_seconds"))!;
    await new Promise((r) => setTimeout(r, 1_200));
    expect(await metric("vane_evaluator_snapshot_stale_seconds")).toBeGreaterThan(0.5);
    expect((await metric("vane_evaluator_snapshot_age_seconds"))!).toBeGreaterThan(age1 + 1);
    expect(await metric("vane_evaluator_exposures_dropped_total")).toBe(3);
    expect((await fetch(`${h.baseUrl}/readyz`)).status).toBe(200);
  });

  it("catches up when NATS is back: buffered exposures go out, new snapshots load", async () => {
    nats = await startNatsServer({ binary, storeDir: dir, port: nats.port });
    await eventually(() => h.module.exposures.stats().published === 6, 15_000, "buffered exposures published");
    await eventually(() => h.module.kvSource!.status().live, 15_000, "feed live again");
    await eventually(
      async () => {
        await h.put(snapshotOf(fixture, { environmentId: ENV, version: 2 })).catch(() => undefined);
        return h.module.store.get(ENV)?.version === 2;
      },
      15_000,
      "version 2 loaded",
    );
  }, 40_000);
});

describe("cold start", () => {
  it("fails readiness with a reason, and answers UNAVAILABLE, when nothing is loaded", async () => {
    const nowhere = `nats://127.0.0.1:${await freePort()}`;
    const tokens = await createTestTokens();
    const cold = await startEvaluator({ natsUrl: nowhere, fixtures: false, flagd: false, verifier: tokens.verifier });
    try {
      const res = await fetch(`${cold.baseUrl}/readyz`);
      expect(res.status).toBe(503);
      const body = (await res.json()) as { failing: Record<string, string> };
      expect(body.failing["evaluator.snapshots"]).toMatch(/no configuration loaded yet/);
      const t = await tokens.sign({ sub: "k", env: ENV, kind: "server" });
      const err = await cold
        .client(EvaluationService, t)
        .evaluate({ flagKey: "x" })
        .catch((e: unknown) => ConnectError.from(e));
      expect((err as ConnectError).code).toBe(Code.Unavailable);
    } finally {
      await cold.close();
    }
  });
});
