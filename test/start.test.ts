/**
 * `npm start` end to end: the real entry point in a child process, on the test Postgres (its own
 * schema prefix) and NATS, reached the way the printed instructions say.
 */
import { createClient } from "@connectrpc/connect";
import { createGrpcTransport } from "@connectrpc/connect-node";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Health, HealthCheckResponse_ServingStatus } from "#gen/grpc/health/v1/health_pb.js";
import { eventually } from "#test/support/harness.ts";
import { startVane, type VaneProcess } from "./vane-process.ts";

let vane: VaneProcess;
beforeAll(() => {
  vane = startVane();
});
afterAll(() => vane?.cleanup());

describe("npm start", () => {
  it("serves every protocol on one port with a working first admin credential, and stops cleanly", async () => {
    const { baseUrl, adminKey: secret, organizationId: orgId, flagdPort } = await vane.started();
    const output = vane.output();
    // Port 0 was asked for: the printed URL must carry the real one.
    expect(baseUrl).not.toMatch(/:0$/);
    expect(output).toContain(`postgres: using configured`);
    expect(output).toContain(`${vane.prefix}identity`);
    expect(output).toContain(`.vane/${vane.prefix}admin-api-key`);

    // gRPC over HTTP/2.
    const health = createClient(Health, createGrpcTransport({ baseUrl }));
    expect((await health.check({ service: "" })).status).toBe(HealthCheckResponse_ServingStatus.SERVING);

    // Connect JSON over HTTP/1.1, as the printed curl commands do.
    const call = (path: string, body: unknown, token?: string) =>
      fetch(`${baseUrl}/${path}`, {
        method: "POST",
        headers: { "content-type": "application/json", ...(token ? { authorization: `Bearer ${token}` } : {}) },
        body: JSON.stringify(body),
      });
    const exchanged = await call("vane.identity.v1.AuthService/ExchangeApiKey", { apiKey: secret });
    expect(exchanged.status).toBe(200);
    const { accessToken, principal } = (await exchanged.json()) as { accessToken: string; principal: { organizationId: string; role: string } };
    expect(principal).toMatchObject({ organizationId: orgId, role: "ROLE_OWNER" });
    const listed = await call("vane.identity.v1.IdentityService/ListProjects", { organizationId: orgId }, accessToken);
    expect(listed.status).toBe(200);
    const { projects } = (await listed.json()) as { projects: { key: string }[] };
    expect(projects.map((p) => p.key)).toEqual(["default"]);

    // The flags service runs in the same process and reaches identity through it.
    const { projects: full } = (await (await call("vane.identity.v1.IdentityService/ListProjects", { organizationId: orgId }, accessToken)).json()) as {
      projects: { id: string }[];
    };
    const created = await call(
      "vane.flags.v1.FlagService/CreateFlag",
      {
        projectId: full[0].id,
        key: "new-checkout",
        name: "New checkout",
        type: "FLAG_TYPE_BOOLEAN",
        variants: [
          { key: "on", value: true },
          { key: "off", value: false },
        ],
      },
      accessToken,
    );
    expect(created.status).toBe(200);
    const got = await call("vane.flags.v1.FlagService/GetFlag", { projectId: full[0].id, key: "new-checkout" }, accessToken);
    expect(((await got.json()) as { flag: { key: string } }).flag.key).toBe("new-checkout");

    // The evaluator runs in the same process: the change reaches it through the KV bucket.
    const { environments } = (await (await call("vane.identity.v1.IdentityService/ListEnvironments", { projectId: full[0].id }, accessToken)).json()) as {
      environments: { id: string; key: string }[];
    };
    const env = environments.find((e) => e.key === "development")!;
    const turnedOn = await call(
      "vane.flags.v1.FlagService/UpdateFlagEnvironment",
      { environmentId: env.id, flagKey: "new-checkout", expectedVersion: 0, enabled: true, defaultVariant: "on" },
      accessToken,
    );
    expect(turnedOn.status).toBe(200);
    const { secret: serverKey } = (await (
      await call("vane.identity.v1.IdentityService/CreateApiKey", { environmentId: env.id, kind: "API_KEY_KIND_SERVER", name: "test" }, accessToken)
    ).json()) as {
      secret: string;
    };
    const { accessToken: serverToken } = (await (await call("vane.identity.v1.AuthService/ExchangeApiKey", { apiKey: serverKey })).json()) as {
      accessToken: string;
    };
    const evaluated = await eventually(
      async () => {
        const res = await call("vane.evaluation.v1.EvaluationService/Evaluate", { flagKey: "new-checkout", context: { targetingKey: "u1" } }, serverToken);
        if (res.status !== 200) throw new Error(`Evaluate: ${res.status} ${await res.text()}`);
        const answer = (await res.json()) as { evaluation: { value: unknown; variant: string; reason: string } };
        // The flag's creation (disabled) may reach the evaluator before the change that enables it.
        return answer.evaluation.reason === "REASON_DISABLED" ? undefined : answer;
      },
      10_000,
      "the flag to reach the evaluator",
    );
    expect(evaluated.evaluation).toMatchObject({ value: true, variant: "on", reason: "REASON_STATIC" });

    // flagd's protocol on its own port, as the OpenFeature providers speak it: the selector is
    // the server key (an environment id alone is not a credential).
    expect(flagdPort).toBeDefined();
    const resolveAs = (selector: string) =>
      fetch(`http://127.0.0.1:${flagdPort}/flagd.evaluation.v1.Service/ResolveBoolean`, {
        method: "POST",
        headers: { "content-type": "application/json", "flagd-selector": selector },
        body: JSON.stringify({ flagKey: "new-checkout", context: {} }),
      });
    expect(await (await resolveAs(serverKey)).json()).toMatchObject({ value: true, variant: "on", reason: "STATIC" });
    expect((await resolveAs(env.id)).status).toBe(401);

    // A clean exit on its own (no timings in tests: a hang runs into the test's timeout).
    expect(await vane.stop()).toEqual({ code: 0, signal: null });
    expect(vane.output()).toContain("Vane stopped.");
  }, 25_000);
});
