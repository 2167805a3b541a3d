/**
 * `npm start` end to end: the real entry point in a child process, on the test Postgres (its own
 * schema prefix) and NATS, reached the way the printed instructions say.
 */
import { type ChildProcess, spawn } from "node:child_process";
import { rm } from "node:fs/promises";
import { fileURLToPath } from "node:url";
import { createClient } from "@connectrpc/connect";
import { createGrpcTransport } from "@connectrpc/connect-node";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Health, HealthCheckResponse_ServingStatus } from "#gen/grpc/health/v1/health_pb.js";
import { connectTestNats, deleteStreams, dropSchema, testDatabaseUrl, testNatsUrl, uniqueName } from "#lib/test-support.ts";

const root = fileURLToPath(new URL("..", import.meta.url));
const prefix = `${uniqueName("start")}_`;

let child: ChildProcess;
let output = "";
let exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;

/** Retries `fn` until it resolves (or 10 s pass). */
async function eventually<T>(fn: () => Promise<T>, timeoutMs = 10_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    try {
      return await fn();
    } catch (err) {
      if (Date.now() > deadline) throw err;
      await new Promise((r) => setTimeout(r, 100));
    }
  }
}

/** Resolves with the output once `pattern` appears in it; rejects if the process exits first. */
function waitForOutput(pattern: RegExp, timeoutMs: number): Promise<RegExpMatchArray> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => done(new Error(`no ${pattern} in ${timeoutMs} ms; output:\n${output}`)), timeoutMs);
    const check = () => {
      const m = output.match(pattern);
      if (m) done(undefined, m);
    };
    const onExit = () => done(new Error(`npm start exited early; output:\n${output}`));
    const done = (err?: Error, m?: RegExpMatchArray) => {
      clearTimeout(timer);
      child.stdout!.off("data", check);
      child.off("exit", onExit);
      if (err) reject(err);
      else resolve(m!);
    };
    child.stdout!.on("data", check);
    child.once("exit", onExit);
    check();
  });
}

beforeAll(() => {
  child = spawn(process.execPath, ["--import", "tsx", "scripts/start.ts", "--port", "0"], {
    cwd: root,
    env: {
      ...process.env,
      VANE_DATABASE_URL: testDatabaseUrl,
      VANE_NATS_URL: testNatsUrl,
      VANE_SCHEMA_PREFIX: prefix,
      // The machine's NATS is shared: keep to names of this run.
      VANE_SNAPSHOT_BUCKET: `${prefix}snapshots`,
      VANE_DOMAIN_STREAM: `${prefix}DOMAIN`.toUpperCase(),
      VANE_DOMAIN_SUBJECT_PREFIX: `${prefix}domain`,
      VANE_EVENTS_STREAM: `${prefix}EVENTS`.toUpperCase(),
      VANE_FLAGD_PORT: "0",
      VANE_FLAGD_SYNC_PORT: "0",
      VANE_HOST: "127.0.0.1",
      VANE_LOG_LEVEL: "warn",
    },
    stdio: ["ignore", "pipe", "pipe"],
  });
  exited = new Promise((resolve) => child.once("exit", (code, signal) => resolve({ code, signal })));
  const collect = (chunk: Buffer) => void (output += chunk.toString("utf8"));
  child.stdout!.on("data", collect);
  child.stderr!.on("data", collect);
});

afterAll(async () => {
  if (child.exitCode === null && child.signalCode === null) {
    child.kill("SIGKILL");
    await exited;
  }
  for (const service of ["identity", "flags", "analytics"]) await dropSchema(testDatabaseUrl, `${prefix}${service}`);
  const nc = await connectTestNats();
  await deleteStreams(nc, [`KV_${prefix}snapshots`, `${prefix}DOMAIN`.toUpperCase(), `${prefix}EVENTS`.toUpperCase()]);
  await nc.drain();
  await rm(`${root}.vane/${prefix}admin-api-key`, { force: true });
});

describe("npm start", () => {
  it("serves every protocol on one port with a working first admin credential, and stops cleanly", async () => {
    await waitForOutput(/Press Ctrl-C to stop/, 15_000);
    // Port 0 was asked for: the printed URL must carry the real one.
    const [, baseUrl] = output.match(/Vane is running at (http:\/\/127\.0\.0\.1:\d+)\n/) ?? [];
    expect(baseUrl).toBeDefined();
    expect(baseUrl).not.toMatch(/:0$/);
    expect(output).toContain(`postgres: using configured`);
    expect(output).toContain(`${prefix}identity`);
    expect(output).toContain(`.vane/${prefix}admin-api-key`);
    const [secret] = output.match(/vane_personal_[A-Za-z0-9_-]+/) ?? [];
    expect(secret).toBeDefined();
    const [, orgId] = output.match(/"organizationId":"([0-9a-f-]{36})"/) ?? [];
    expect(orgId).toBeDefined();

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
    const { secret: serverKey } = (await (await call("vane.identity.v1.IdentityService/CreateApiKey", { environmentId: env.id, kind: "API_KEY_KIND_SERVER", name: "test" }, accessToken)).json()) as {
      secret: string;
    };
    const { accessToken: serverToken } = (await (await call("vane.identity.v1.AuthService/ExchangeApiKey", { apiKey: serverKey })).json()) as { accessToken: string };
    const evaluated = await eventually(async () => {
      const res = await call("vane.evaluation.v1.EvaluationService/Evaluate", { flagKey: "new-checkout", context: { targetingKey: "u1" } }, serverToken);
      if (res.status !== 200) throw new Error(`Evaluate: ${res.status} ${await res.text()}`);
      return (await res.json()) as { evaluation: { value: unknown; variant: string; reason: string } };
    });
    expect(evaluated.evaluation).toMatchObject({ value: true, variant: "on", reason: "REASON_STATIC" });

    // flagd's protocol on its own port, as the OpenFeature providers speak it.
    const [, flagdPort] = output.match(/flagd evaluation \(v1, v2\)\s+127\.0\.0\.1:(\d+)/) ?? [];
    expect(flagdPort).toBeDefined();
    const resolved = await fetch(`http://127.0.0.1:${flagdPort}/flagd.evaluation.v1.Service/ResolveBoolean`, {
      method: "POST",
      headers: { "content-type": "application/json", "flagd-selector": env.id },
      body: JSON.stringify({ flagKey: "new-checkout", context: {} }),
    });
    expect(await resolved.json()).toMatchObject({ value: true, variant: "on", reason: "STATIC" });

    const t0 = Date.now();
    child.kill("SIGTERM");
    expect(await exited).toEqual({ code: 0, signal: null });
    expect(Date.now() - t0).toBeLessThan(5_000);
    expect(output).toContain("Vane stopped.");
  }, 25_000);
});
