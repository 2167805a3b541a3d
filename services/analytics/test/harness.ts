/**
 * Analytics for tests, with the real identity, flags and collector in the same process and on the
 * same server (the directory and the flags client call them over gRPC there): own Postgres
 * schemas, own events stream, own snapshot bucket and domain stream. Test code only.
 */
import type { DescService } from "@bufbuild/protobuf";
import { type Client, createClient, type Interceptor, type Transport } from "@connectrpc/connect";
import { createGrpcTransport } from "@connectrpc/connect-node";
import { createTokenVerifier, type VaneClaims } from "#lib/auth/auth.ts";
import { type Bus, connectBus } from "#lib/bus/bus.ts";
import { createEnvReader } from "#lib/process/config.ts";
import { readCommonConfig } from "#lib/process/service-config.ts";
import { type RunningModules, startModules } from "#lib/process/service-module.ts";
import { eventsStream, eventsSubjectPrefix } from "#lib/bus/streams.ts";
import { createTestLogger, deleteStreams, dropSchema, testDatabaseUrl, testNatsUrl, uniqueName } from "#test/support/harness.ts";
import { createCollectorModule } from "../../collector/module.ts";
import { createFlagsModule } from "../../flags/module.ts";
import { readIdentityConfig } from "../../identity/config.ts";
import { createIdentityModule, type IdentityModule } from "../../identity/module.ts";
import { addMember, seedTenant, type Tenant } from "#test/support/seed-tenant.ts";
import { signedBanditCredentials } from "../bandit-runner.ts";
import { createIdentityDirectory } from "#lib/clients/identity-directory.ts";
import { createRemoteFlagsClient, type FlagsClient } from "../flags-client.ts";
import { type AnalyticsModule, createAnalyticsModule } from "../module.ts";

export type { Tenant };

export interface AnalyticsHarness {
  identity: IdentityModule;
  analytics: AnalyticsModule;
  running: RunningModules;
  bus: Bus;
  /** The events stream and its subject prefix (`<prefix>.<environment_id>.track`). */
  eventsStream: string;
  subjectPrefix: string;
  client<S extends DescService>(service: S, token?: string): Client<S>;
  sign(claims: VaneClaims): Promise<string>;
  seedTenant(): Promise<Tenant>;
  member(t: Tenant, role: "viewer" | "editor" | "admin"): Promise<{ userId: string; token: string }>;
  close(): Promise<void>;
}

/** Options for {@link startAnalytics}. */
export interface AnalyticsHarnessOptions {
  /** Wraps the real flags client (fault injection around the real flags service). */
  wrapFlags?: (real: FlagsClient) => FlagsClient;
  /** Runs the bandit, authenticated with tokens signed by the harness's identity. */
  bandit?: { defaultIntervalMs?: number; tickMs?: number };
}

/** Starts identity, flags, collector and analytics on one server. */
export async function startAnalytics(opts: AnalyticsHarnessOptions = {}): Promise<AnalyticsHarness> {
  const identitySchema = uniqueName("identity_at");
  const flagsSchema = uniqueName("flags_at");
  const analyticsSchema = uniqueName("analytics_test");
  const bucket = uniqueName("snapshots_at");
  const domainStream = uniqueName("DOMAIN_AT").toUpperCase();
  const events = uniqueName("EVENTS_AT").toUpperCase();
  const reader = createEnvReader({ VANE_PORT: "0", VANE_HOST: "127.0.0.1", VANE_DRAIN_DELAY: "0s" });
  const common = readCommonConfig(reader);
  const idConfig = readIdentityConfig(reader);
  reader.done();
  const logger = createTestLogger();
  const bus = await connectBus({ servers: testNatsUrl, name: "analytics-test", logger });
  let baseUrl = "";
  const identity = await createIdentityModule({
    databaseUrl: testDatabaseUrl,
    schema: identitySchema,
    tokenIssuer: common.tokenIssuer,
    migrate: true,
    config: idConfig,
    logger,
  });
  const flags = await createFlagsModule({
    databaseUrl: testDatabaseUrl,
    schema: flagsSchema,
    nats: { bus },
    snapshotBucket: bucket,
    domainStream,
    domainSubjectPrefix: `vanetest.${domainStream.toLowerCase()}`,
    directory: createIdentityDirectory({ baseUrl: () => baseUrl }),
    migrate: true,
    logger,
    relay: { pollIntervalMs: 200, retryMinMs: 50, retryMaxMs: 500 },
  });
  const collector = await createCollectorModule({ bus, streamName: events, rateLimit: { perSecond: 100_000, burst: 100_000 }, logger });
  const analytics = await createAnalyticsModule({
    databaseUrl: testDatabaseUrl,
    schema: analyticsSchema,
    bus,
    eventsStream: events,
    consumerName: uniqueName("analytics"),
    pipeline: { batchSize: 1000, ackWaitMs: 10_000 },
    flags: (opts.wrapFlags ?? ((c) => c))(createRemoteFlagsClient({ baseUrl: () => baseUrl })),
    directory: createIdentityDirectory({ baseUrl: () => baseUrl }),
    migrate: true,
    logger,
    bandit: opts.bandit && { ...opts.bandit, credentials: signedBanditCredentials((claims, ttl) => identity.keys.sign(claims, ttl)) },
  });
  const verifier = createTokenVerifier({ issuer: common.tokenIssuer, keys: identity.keys.keySet });
  const running = await startModules({ config: common, logger, modules: [identity, flags, collector, analytics], verifier });
  baseUrl = `http://127.0.0.1:${running.port}`;
  const transports = new Map<string, Transport>();
  const transport = (token: string | undefined) => {
    let t = transports.get(token ?? "");
    if (!t) {
      const auth: Interceptor = (next) => (req) => {
        if (token) req.header.set("authorization", `Bearer ${token}`);
        return next(req);
      };
      t = createGrpcTransport({ baseUrl, interceptors: [auth] });
      transports.set(token ?? "", t);
    }
    return t;
  };
  const sign = async (claims: VaneClaims) => (await identity.keys.sign(claims, 10 * 60_000)).token;
  const idb = identity.database.db;
  return {
    identity,
    analytics,
    running,
    bus,
    eventsStream: events,
    subjectPrefix: eventsSubjectPrefix(eventsStream(events)),
    client: (service, token) => createClient(service, transport(token)),
    sign,
    seedTenant: () => seedTenant(idb, sign),
    member: (t, role) => addMember(idb, sign, t, role),
    async close() {
      await running.stop();
      for (const s of [identitySchema, flagsSchema, analyticsSchema]) await dropSchema(testDatabaseUrl, s);
      await deleteStreams(bus.nc, [events, domainStream, `KV_${bucket}`]);
      await bus.drain();
    },
  };
}
