/**
 * A real evaluator for tests: its own KV bucket and events stream on the test NATS, the main
 * server and both flagd servers on port 0, tokens signed by a key made for the test, and
 * helpers to write snapshots the way the flags service does. Test code only.
 */
import { readFileSync } from "node:fs";
import { create, fromJson, toBinary, type JsonValue } from "@bufbuild/protobuf";
import { timestampFromMs, ValueSchema } from "@bufbuild/protobuf/wkt";
import { createClient, type Client, type Interceptor } from "@connectrpc/connect";
import { createConnectTransport, createGrpcTransport } from "@connectrpc/connect-node";
import type { DescService } from "@bufbuild/protobuf";
import { Kvm, type KV } from "@nats-io/kv";
import type { EvaluationDetails, FlagValue } from "@openfeature/server-sdk";
import { jetstream } from "@nats-io/jetstream";
import type { NatsConnection } from "@nats-io/transport-node";
import { createLocalJWKSet, exportJWK, generateKeyPair, SignJWT } from "jose";
import { EnvironmentSnapshotSchema, SnapshotFlagSchema, type EnvironmentSnapshot } from "#gen/vane/flags/v1/snapshot_pb.js";
import { createTokenVerifier, TOKEN_AUDIENCE, type TokenVerifier, type VaneClaims } from "#lib/auth/auth.ts";
import { createEnvReader } from "#lib/process/config.ts";
import type { FlagSetDefinition, FlagDefinition } from "#engine";
import { readCommonConfig } from "#lib/process/service-config.ts";
import { startModules, type RunningModules } from "#lib/process/service-module.ts";
import { startTelemetry } from "#lib/process/telemetry.ts";
import { connectTestNats, createTestLogger, deleteStreams, testNatsUrl, uniqueName } from "#test/support/harness.ts";
import { readEvaluatorConfig } from "../config.ts";
import { createEvaluatorModule, type EvaluatorModule, type FlagdPorts } from "../module.ts";

export { eventually } from "#test/support/harness.ts";

/** The flag set every suite uses (services/evaluator/test/flags.fixture.json). */
/** What the tests compare of a provider's answer. */
export type Picked = Pick<EvaluationDetails<FlagValue>, "value" | "variant" | "reason" | "errorCode">;
export const pick = (d: EvaluationDetails<FlagValue>): Picked => ({ value: d.value, variant: d.variant, reason: d.reason, errorCode: d.errorCode });

/** One Connect streaming envelope (flags 0, length, JSON), as a client sends a stream's request. */
export function envelope(json: string): Uint8Array {
  const body = new TextEncoder().encode(json);
  const out = new Uint8Array(5 + body.length);
  new DataView(out.buffer).setUint32(1, body.length);
  out.set(body, 5);
  return out;
}

export const fixtureText = readFileSync(new URL("./flags.fixture.json", import.meta.url), "utf8");
export const fixture = JSON.parse(fixtureText) as FlagSetDefinition;

/** Test signing: a fresh ES256 key, and a verifier that trusts only it. */
export async function createTestTokens(issuer = "vane") {
  const { publicKey, privateKey } = await generateKeyPair("ES256", { extractable: true });
  const jwk = { ...(await exportJWK(publicKey)), kid: "test", alg: "ES256" };
  const verifier: TokenVerifier = createTokenVerifier({ issuer, keys: createLocalJWKSet({ keys: [jwk] }) });
  const sign = (claims: VaneClaims, ttlSec = 300) =>
    new SignJWT(claims)
      .setProtectedHeader({ alg: "ES256", kid: "test" })
      .setIssuer(issuer)
      .setAudience(TOKEN_AUDIENCE)
      .setSubject(claims.sub ?? "key-1")
      .setIssuedAt()
      .setExpirationTime(Math.floor(Date.now() / 1000) + ttlSec)
      .sign(privateKey);
  return { verifier, sign };
}

/** A snapshot as the flags service writes it, from a flagd flag set. */
export function snapshotOf(
  def: FlagSetDefinition,
  opts: { environmentId: string; organizationId?: string; projectId?: string; version: number; clientVisible?: string[]; createTimeMs?: number },
): EnvironmentSnapshot {
  const value = (v: unknown) => fromJson(ValueSchema, v as JsonValue);
  const entries = Object.entries(def.flags as Record<string, FlagDefinition>);
  return create(EnvironmentSnapshotSchema, {
    organizationId: opts.organizationId ?? "org-1",
    projectId: opts.projectId ?? "prj-1",
    environmentId: opts.environmentId,
    version: BigInt(opts.version),
    createTime: timestampFromMs(opts.createTimeMs ?? Date.now()),
    flags: entries.map(([key, f]) =>
      create(SnapshotFlagSchema, {
        key,
        enabled: f.state === "ENABLED",
        variants: Object.fromEntries(Object.entries(f.variants).map(([k, v]) => [k, value(v)])),
        defaultVariant: f.defaultVariant ?? "",
        targeting: f.targeting === undefined ? undefined : value(f.targeting),
        metadata: Object.fromEntries(Object.entries(f.metadata ?? {}).map(([k, v]) => [k, value(v)])),
        clientVisible: opts.clientVisible ? opts.clientVisible.includes(key) : true,
      }),
    ),
    evaluators: Object.fromEntries(Object.entries(def.$evaluators ?? {}).map(([k, v]) => [k, value(v)])),
    metadata: Object.fromEntries(Object.entries(def.metadata ?? {}).map(([k, v]) => [k, value(v)])),
  });
}

/** Options for {@link startEvaluator}. */
export interface StartEvaluatorOptions {
  env?: Record<string, string>;
  natsUrl?: string | null;
  /** Use this bucket instead of a fresh one (several evaluators on one bucket). */
  bucket?: string;
  exposures?: Parameters<typeof createEvaluatorModule>[0]["exposures"];
  verifier?: TokenVerifier;
  flagd?: boolean;
  /** identity's base URL, for API keys as flagd selectors. */
  identityUrl?: () => string;
  /** Create the bucket and keep a fixture connection (default true; false for an unreachable NATS). */
  fixtures?: boolean;
}

export interface EvaluatorHarness {
  module: EvaluatorModule;
  running: RunningModules;
  baseUrl: string;
  flagd: FlagdPorts;
  bucket: string;
  stream: string;
  nc: NatsConnection | undefined;
  kv: KV | undefined;
  /** Writes a snapshot into the bucket (key = environment id). */
  put(snapshot: EnvironmentSnapshot): Promise<number>;
  client<S extends DescService>(service: S, token?: string, protocol?: "grpc" | "connect", port?: number): Client<S>;
  close(): Promise<void>;
}

/** Starts an evaluator with a unique bucket and events stream. */
export async function startEvaluator(opts: StartEvaluatorOptions = {}): Promise<EvaluatorHarness> {
  const natsUrl = opts.natsUrl === null ? undefined : (opts.natsUrl ?? testNatsUrl);
  const bucket = opts.bucket ?? uniqueName("snap");
  const stream = uniqueName("EVENTS").toUpperCase();
  const reader = createEnvReader({
    VANE_PORT: "0",
    VANE_HOST: "127.0.0.1",
    VANE_FLAGD_PORT: "0",
    VANE_FLAGD_SYNC_PORT: "0",
    VANE_SNAPSHOT_BUCKET: bucket,
    VANE_EVENTS_STREAM: stream,
    VANE_SHUTDOWN_TIMEOUT: "1s",
    VANE_DRAIN_DELAY: "0s",
    // Most suites here test the flagd ports as a trusted port (selectors name environments) and
    // with bearer tokens; API keys as selectors need identity (test/flagd-keys.test.ts).
    VANE_FLAGD_AUTH: "none",
    ...opts.env,
  });
  const common = readCommonConfig(reader);
  const config = readEvaluatorConfig(reader);
  reader.done();
  let nc: NatsConnection | undefined;
  let kv: KV | undefined;
  if (natsUrl && opts.fixtures !== false) {
    nc = await connectTestNats(natsUrl);
    kv = await new Kvm(jetstream(nc)).create(bucket, { history: 5 });
  }
  // Metrics (/metrics) need the process's telemetry; it is idempotent.
  startTelemetry({ serviceName: "evaluator-test", env: { OTEL_TRACES_SAMPLER: "always_off" } });
  const logger = createTestLogger();
  const verifier = opts.verifier ?? (await createTestTokens()).verifier;
  const module = await createEvaluatorModule({ config, common, logger, natsUrl, exposures: opts.exposures, identityUrl: opts.identityUrl });
  const running = await startModules({ config: common, logger, modules: [module], verifier });
  const flagd = opts.flagd === false ? { evaluationPort: undefined, syncPort: undefined } : await module.startFlagdServers(verifier);
  const baseUrl = `http://127.0.0.1:${running.port}`;
  return {
    module,
    running,
    baseUrl,
    flagd,
    bucket,
    stream,
    nc,
    kv,
    put: (s) => kv!.put(s.environmentId, toBinary(EnvironmentSnapshotSchema, s)),
    client(service, token, protocol = "grpc", port = running.port) {
      const auth: Interceptor = (next) => (req) => {
        if (token) req.header.set("authorization", `Bearer ${token}`);
        return next(req);
      };
      const url = `http://127.0.0.1:${port}`;
      const transport =
        protocol === "grpc"
          ? createGrpcTransport({ baseUrl: url, interceptors: [auth] })
          : createConnectTransport({ baseUrl: url, httpVersion: "1.1", interceptors: [auth] });
      return createClient(service, transport);
    },
    async close() {
      await running.stop();
      if (nc) {
        await deleteStreams(nc, [`KV_${bucket}`, stream]);
        await nc.drain();
      }
    },
  };
}
