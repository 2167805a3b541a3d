/**
 * The evaluator keeps serving through the loss of the flags service, identity and Postgres: a
 * standalone evaluator follows the snapshots that `npm start`'s flags service writes; then the
 * whole `npm start` process (flags, identity, their Postgres pool) is killed, and evaluation goes
 * on from the last snapshot, ready and correct.
 */
import { createClient } from "@connectrpc/connect";
import { createGrpcTransport } from "@connectrpc/connect-node";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Health, HealthCheckResponse_ServingStatus } from "#gen/grpc/health/v1/health_pb.js";
import { EvaluationService } from "#gen/vane/evaluation/v1/evaluation_service_pb.js";
import { createTestTokens, startEvaluator, type EvaluatorHarness } from "../services/evaluator/test/harness.ts";
import { connectTestNats, deleteStreams, eventually } from "#test/support/harness.ts";
import { adminSession, startVane, type VaneProcess } from "./vane-process.ts";

let vane: VaneProcess;
let evaluator: EvaluatorHarness | undefined;
beforeAll(() => {
  vane = startVane([], { VANE_FLAGD_PORT: "off", VANE_FLAGD_SYNC_PORT: "off" });
});
afterAll(async () => {
  await evaluator?.close();
  await vane?.cleanup();
  // The evaluator's exposure stream (its harness only removes what it created itself).
  if (evaluator) {
    const nc = await connectTestNats();
    await deleteStreams(nc, [evaluator.stream]);
    await nc.drain();
  }
});

describe("evaluation through the loss of the flags service", () => {
  it("keeps answering from the last snapshot after flags, identity and their Postgres are gone", async () => {
    const started = await vane.started();
    const { baseUrl } = started;
    const { call, accessToken, projectId, environmentId } = await adminSession(started, "production");
    const variants = [
      { key: "on", value: true },
      { key: "off", value: false },
    ];
    await call("vane.flags.v1.FlagService/CreateFlag", { projectId, key: "checkout", name: "Checkout", type: "FLAG_TYPE_BOOLEAN", variants }, accessToken);
    await call(
      "vane.flags.v1.FlagService/UpdateFlagEnvironment",
      {
        environmentId,
        flagKey: "checkout",
        expectedVersion: 0,
        enabled: true,
        defaultVariant: "off",
        rules: [{ conditions: [{ attribute: { attribute: "plan", operator: "OPERATOR_EQUALS", values: ["pro"] } }], outcome: { variant: "on" } }],
      },
      accessToken,
    );

    // A separate evaluator on the snapshots npm start's flags service writes.
    const tokens = await createTestTokens();
    evaluator = await startEvaluator({ bucket: `${vane.prefix}snapshots`, fixtures: false, flagd: false, verifier: tokens.verifier });
    const token = await tokens.sign({ sub: "backend", env: environmentId, kind: "server" });
    const client = createClient(
      EvaluationService,
      createGrpcTransport({ baseUrl: evaluator.baseUrl, interceptors: [(next) => (req) => (req.header.set("authorization", `Bearer ${token}`), next(req))] }),
    );
    const evaluate = async (plan: string) => (await client.evaluate({ flagKey: "checkout", context: { targetingKey: "u1", plan } })).evaluation!;
    await eventually(async () => (await evaluate("pro")).variant === "on", 10_000, "the snapshot to reach the evaluator");

    // The whole management plane dies at once.
    await vane.cleanupProcessOnly();
    await expect(fetch(`${baseUrl}/healthz`)).rejects.toThrow();

    for (let i = 0; i < 20; i++) {
      expect(await evaluate("pro")).toMatchObject({ variant: "on" });
      expect(await evaluate("free")).toMatchObject({ variant: "off" });
    }
    expect((await fetch(`${evaluator.baseUrl}/readyz`)).status).toBe(200);
    const health = createClient(Health, createGrpcTransport({ baseUrl: evaluator.baseUrl }));
    expect((await health.check({ service: "" })).status).toBe(HealthCheckResponse_ServingStatus.SERVING);
  }, 60_000);
});
