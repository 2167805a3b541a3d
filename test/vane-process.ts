/**
 * Runs the real `npm start` entry point in a child process for end-to-end tests, on the test
 * Postgres and NATS, with every name it creates (schemas, streams, buckets, credential file)
 * behind one unique prefix, and removes them all afterwards.
 */
import { type ChildProcess, spawn } from "node:child_process";
import { rm } from "node:fs/promises";
import { fileURLToPath } from "node:url";
import type { DescService } from "@bufbuild/protobuf";
import { type Client, createClient, type Interceptor } from "@connectrpc/connect";
import { createGrpcTransport } from "@connectrpc/connect-node";
import { connectTestNats, deleteStreams, dropSchema, testDatabaseUrl, testNatsUrl, uniqueName } from "#test/support/harness.ts";

const root = fileURLToPath(new URL("..", import.meta.url));
const SCHEMAS = ["identity", "flags", "analytics"];

/** A running `npm start`. */
export interface VaneProcess {
  readonly prefix: string;
  /** The spawned process: npm itself with `{ npm: true }`, else the node process. */
  readonly pid: number;
  /** Everything it printed so far (stdout and stderr). */
  output(): string;
  /** Resolves with the match once `pattern` appears in stdout; rejects if the process exits first. */
  waitForOutput(pattern: RegExp, timeoutMs?: number): Promise<RegExpMatchArray>;
  /** The main URL and the admin credential it printed (waits for start-up to finish). */
  started(timeoutMs?: number): Promise<{ baseUrl: string; adminKey: string; organizationId: string; flagdPort?: number; syncPort?: number }>;
  /** Sends SIGTERM and resolves with how the process ended. */
  stop(): Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  /** Kills the process (SIGKILL: a crash), leaving what it created in place. */
  cleanupProcessOnly(): Promise<void>;
  /** Kills the process if it still runs and removes everything it created. */
  cleanup(): Promise<void>;
}

/**
 * Starts `scripts/start.ts` with `args`; `env` adds to (or overrides) the test settings. With
 * `npm: true` it runs `npm start` itself, as a person does (npm, then node as its child).
 */
export function startVane(args: string[] = [], env: Record<string, string> = {}, options: { npm?: boolean } = {}): VaneProcess {
  const prefix = `${uniqueName("vane")}_`;
  const names = {
    VANE_SNAPSHOT_BUCKET: `${prefix}snapshots`,
    VANE_DOMAIN_STREAM: `${prefix}DOMAIN`.toUpperCase(),
    VANE_DOMAIN_SUBJECT_PREFIX: `${prefix}domain`,
    VANE_EVENTS_STREAM: `${prefix}EVENTS`.toUpperCase(),
  };
  const [command, commandArgs] = options.npm
    ? ["npm", ["start", "--", "--port", "0", ...args]]
    : [process.execPath, ["--import", "tsx", "scripts/start.ts", "--port", "0", ...args]];
  const child: ChildProcess = spawn(command, commandArgs, {
    cwd: root,
    env: {
      ...process.env,
      VANE_DATABASE_URL: testDatabaseUrl,
      VANE_NATS_URL: testNatsUrl,
      VANE_SCHEMA_PREFIX: prefix,
      ...names,
      VANE_FLAGD_PORT: "0",
      VANE_FLAGD_SYNC_PORT: "0",
      VANE_HOST: "127.0.0.1",
      VANE_LOG_LEVEL: "warn",
      ...env,
    },
    stdio: ["ignore", "pipe", "pipe"],
  });
  let out = "";
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) =>
    child.once("exit", (code, signal) => resolve({ code, signal })),
  );
  child.stdout!.on("data", (chunk: Buffer) => void (out += chunk.toString("utf8")));
  child.stderr!.on("data", (chunk: Buffer) => void (out += chunk.toString("utf8")));

  const waitForOutput = (pattern: RegExp, timeoutMs = 20_000) =>
    new Promise<RegExpMatchArray>((resolve, reject) => {
      const timer = setTimeout(() => done(new Error(`no ${pattern} in ${timeoutMs} ms; output:\n${out}`)), timeoutMs);
      const check = () => {
        const m = out.match(pattern);
        if (m) done(undefined, m);
      };
      const onExit = () => done(new Error(`npm start exited early; output:\n${out}`));
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

  return {
    prefix,
    pid: child.pid!,
    output: () => out,
    waitForOutput,
    async started(timeoutMs = 20_000) {
      await waitForOutput(/Press Ctrl-C to stop/, timeoutMs);
      const port = (what: RegExp) => {
        const m = out.match(what);
        return m ? Number(m[1]) : undefined;
      };
      return {
        baseUrl: out.match(/Vane is running at (http:\/\/127\.0\.0\.1:\d+)\n/)![1],
        adminKey: out.match(/vane_personal_[A-Za-z0-9_-]+/)![0],
        organizationId: out.match(/"organizationId":"([0-9a-f-]{36})"/)![1],
        flagdPort: port(/flagd evaluation \(v1, v2\)\s+127\.0\.0\.1:(\d+)/),
        syncPort: port(/flagd sync\s+127\.0\.0\.1:(\d+)/),
      };
    },
    stop() {
      child.kill("SIGTERM");
      return exited;
    },
    async cleanupProcessOnly() {
      if (child.exitCode === null && child.signalCode === null) {
        child.kill("SIGKILL");
        await exited;
      }
    },
    async cleanup() {
      await this.cleanupProcessOnly();
      for (const service of SCHEMAS) await dropSchema(testDatabaseUrl, `${prefix}${service}`);
      const nc = await connectTestNats();
      await deleteStreams(nc, [`KV_${names.VANE_SNAPSHOT_BUCKET}`, names.VANE_DOMAIN_STREAM, names.VANE_EVENTS_STREAM]);
      await nc.drain();
      await rm(`${root}.vane/${prefix}admin-api-key`, { force: true });
    },
  };
}

/** A Connect JSON call over HTTP/1.1, as the README's curl commands make them. */
export type JsonCall = <T>(path: string, body: unknown, token?: string) => Promise<T>;

/** Connect JSON calls to `baseUrl`; a non-200 answer throws with its body. */
export function jsonCaller(baseUrl: string): JsonCall {
  return async <T>(path: string, body: unknown, token?: string): Promise<T> => {
    const res = await fetch(`${baseUrl}/${path}`, {
      method: "POST",
      headers: { "content-type": "application/json", ...(token ? { authorization: `Bearer ${token}` } : {}) },
      body: JSON.stringify(body),
    });
    if (!res.ok) throw new Error(`${path}: ${res.status} ${await res.text()}`);
    return (await res.json()) as T;
  };
}

/** The printed admin credential signed in, with the default project and one of its environments. */
export async function adminSession(
  started: { baseUrl: string; adminKey: string; organizationId: string },
  environmentKey: "development" | "staging" | "production",
): Promise<{ call: JsonCall; accessToken: string; projectId: string; environmentId: string }> {
  const call = jsonCaller(started.baseUrl);
  const { accessToken } = await call<{ accessToken: string }>("vane.identity.v1.AuthService/ExchangeApiKey", { apiKey: started.adminKey });
  const { projects } = await call<{ projects: { id: string }[] }>(
    "vane.identity.v1.IdentityService/ListProjects",
    { organizationId: started.organizationId },
    accessToken,
  );
  const { environments } = await call<{ environments: { id: string; key: string }[] }>(
    "vane.identity.v1.IdentityService/ListEnvironments",
    { projectId: projects[0].id },
    accessToken,
  );
  return { call, accessToken, projectId: projects[0].id, environmentId: environments.find((e) => e.key === environmentKey)!.id };
}

/** A gRPC client of the started system, sending `token` as its bearer credential when given. */
export function grpcClient<S extends DescService>(baseUrl: string, service: S, token?: string): Client<S> {
  const auth: Interceptor = (next) => (req) => {
    if (token) req.header.set("authorization", `Bearer ${token}`);
    return next(req);
  };
  return createClient(service, createGrpcTransport({ baseUrl, interceptors: [auth] }));
}
