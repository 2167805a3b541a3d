/**
 * The flags service for tests, with the real identity service in the same process and on the
 * same server (the directory calls identity over gRPC there): own Postgres schemas, own KV
 * bucket, stream and subjects. Test code only.
 */
import type { DescService } from "@bufbuild/protobuf";
import { type Client, createClient, type Interceptor, type Transport } from "@connectrpc/connect";
import { createGrpcTransport } from "@connectrpc/connect-node";
import { createTokenVerifier, type VaneClaims } from "#lib/auth/auth.ts";
import { createEnvReader } from "#lib/process/config.ts";
import { readCommonConfig } from "#lib/process/service-config.ts";
import { type RunningModules, startModules } from "#lib/process/service-module.ts";
import { connectTestNats, createTestLogger, deleteStreams, dropSchema, testDatabaseUrl, testNatsUrl, uniqueName } from "#test/support/harness.ts";
import { readIdentityConfig } from "../../identity/config.ts";
import { createIdentityModule, type IdentityModule } from "../../identity/module.ts";
import { addMember, seedTenant, type Tenant } from "#test/support/seed-tenant.ts";
import { createIdentityDirectory } from "#lib/clients/identity-directory.ts";
import { createFlagsModule, type FlagsModule } from "../module.ts";

export type { Tenant };

export interface FlagsHarness {
  identity: IdentityModule;
  flags: FlagsModule;
  running: RunningModules;
  bucket: string;
  stream: string;
  subjectPrefix: string;
  flagsSchema: string;
  /** The VANE_SCHEMA_PREFIX that names flagsSchema. */
  schemaPrefix: string;
  client<S extends DescService>(service: S, token?: string): Client<S>;
  sign(claims: VaneClaims): Promise<string>;
  seedTenant(): Promise<Tenant>;
  /** A token of a new member of the tenant with `role`. */
  member(t: Tenant, role: "viewer" | "editor" | "admin"): Promise<{ userId: string; token: string }>;
  close(): Promise<void>;
}

/** Options for {@link startFlags}. */
export interface StartFlagsOptions {
  natsUrl?: string;
  snapshotHistory?: number;
  /** WatchChanges tuning (window size, heartbeat interval). */
  changes?: { capacity?: number; heartbeatMs?: number };
  /** Ceiling on one snapshot's bytes. */
  maxSnapshotBytes?: number;
  /** Publish attempts before the relay parks a message. */
  relayMaxAttempts?: number;
  /** Readiness fails once a message has kept failing this long. */
  outboxStuckAfterMs?: number;
  /** Snapshots larger than this go in chunks. */
  snapshotValueBytes?: number;
}

/** Starts identity and flags on one server. */
export async function startFlags(options: StartFlagsOptions = {}): Promise<FlagsHarness> {
  const identitySchema = uniqueName("identity_ft");
  // `<prefix>flags`, as VANE_SCHEMA_PREFIX names it, so the operator scripts find it.
  const schemaPrefix = `${uniqueName("ft")}_`;
  const flagsSchema = `${schemaPrefix}flags`;
  const bucket = uniqueName("snapshots_test");
  const stream = uniqueName("DOMAIN_TEST").toUpperCase();
  const subjectPrefix = `vanetest.${stream.toLowerCase()}`;
  const natsUrl = options.natsUrl ?? testNatsUrl;
  const reader = createEnvReader({ VANE_PORT: "0", VANE_HOST: "127.0.0.1", VANE_DRAIN_DELAY: "0s" });
  const common = readCommonConfig(reader);
  const idConfig = readIdentityConfig(reader);
  reader.done();
  const logger = createTestLogger();
  const identity = await createIdentityModule({
    databaseUrl: testDatabaseUrl,
    schema: identitySchema,
    tokenIssuer: common.tokenIssuer,
    migrate: true,
    config: idConfig,
    logger,
  });
  let baseUrl = "";
  const flags = await createFlagsModule({
    databaseUrl: testDatabaseUrl,
    schema: flagsSchema,
    nats: { url: natsUrl },
    snapshotBucket: bucket,
    snapshotHistory: options.snapshotHistory ?? 64,
    domainStream: stream,
    domainSubjectPrefix: subjectPrefix,
    directory: createIdentityDirectory({ baseUrl: () => baseUrl }),
    migrate: true,
    logger,
    relay: { pollIntervalMs: 200, retryMinMs: 50, retryMaxMs: 500, maxAttempts: options.relayMaxAttempts },
    changes: options.changes,
    maxSnapshotBytes: options.maxSnapshotBytes,
    outboxStuckAfterMs: options.outboxStuckAfterMs,
    snapshotValueBytes: options.snapshotValueBytes,
  });
  const verifier = createTokenVerifier({ issuer: common.tokenIssuer, keys: identity.keys.keySet });
  const running = await startModules({ config: common, logger, modules: [identity, flags], verifier });
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
    flags,
    running,
    bucket,
    stream,
    subjectPrefix,
    flagsSchema,
    schemaPrefix,
    client: (service, token) => createClient(service, transport(token)),
    sign,
    seedTenant: () => seedTenant(idb, sign),
    member: (t, role) => addMember(idb, sign, t, role),
    async close() {
      await running.stop();
      await dropSchema(testDatabaseUrl, identitySchema);
      await dropSchema(testDatabaseUrl, flagsSchema);
      const nc = await connectTestNats(natsUrl).catch(() => undefined);
      if (nc) {
        await deleteStreams(nc, [stream, `KV_${bucket}`]);
        await nc.drain();
      }
    },
  };
}
