/**
 * A real identity service for tests: its own Postgres schema, a real server on port 0, and
 * helpers to seed tenants and mint tokens. Test code only.
 */
import { randomUUID } from "node:crypto";
import type { DescService } from "@bufbuild/protobuf";
import { type Client, createClient, type Interceptor, type Transport } from "@connectrpc/connect";
import { createConnectTransport, createGrpcTransport } from "@connectrpc/connect-node";
import { createEnvReader } from "#lib/process/config.ts";
import { createTokenVerifier, type VaneClaims } from "#lib/auth/auth.ts";
import { readCommonConfig } from "#lib/process/service-config.ts";
import { startModules, type RunningModules } from "#lib/process/service-module.ts";
import { createTestLogger, dropSchema, testDatabaseUrl, uniqueName } from "#test/support/harness.ts";
import { readIdentityConfig } from "../config.ts";
import { createIdentityModule, type IdentityModule } from "../module.ts";

/** A seeded tenant: an organization with one project and environment, and its owner. */
export interface Tenant {
  orgId: string;
  projectId: string;
  environmentId: string;
  ownerUserId: string;
  ownerMemberId: string;
  ownerToken: string;
}

export interface IdentityHarness {
  module: IdentityModule;
  running: RunningModules;
  baseUrl: string;
  schema: string;
  /** A client over gRPC (HTTP/2) or Connect JSON (HTTP/1.1), optionally with a bearer token. */
  client<S extends DescService>(service: S, token?: string, protocol?: "grpc" | "connect"): Client<S>;
  sign(claims: VaneClaims, ttlMs?: number): Promise<string>;
  seedTenant(slug?: string): Promise<Tenant>;
  close(): Promise<void>;
}

/** Options of {@link startIdentity}. */
export interface StartIdentityOptions {
  /** The clock of the exchange limits' windows. */
  now?: () => number;
  /** Leave the schema in place on close (a second instance on another's schema). */
  keepSchema?: boolean;
}

/** Starts identity with test settings; `env` overrides variables, `schema` the unique schema. */
export async function startIdentity(
  env: Record<string, string> = {},
  schema = uniqueName("identity_test"),
  options: StartIdentityOptions = {},
): Promise<IdentityHarness> {
  const reader = createEnvReader({ VANE_PORT: "0", VANE_HOST: "127.0.0.1", VANE_DRAIN_DELAY: "0s", ...env });
  const common = readCommonConfig(reader);
  const config = readIdentityConfig(reader);
  reader.done();
  const logger = createTestLogger();
  const module = await createIdentityModule({
    databaseUrl: testDatabaseUrl,
    schema,
    tokenIssuer: common.tokenIssuer,
    migrate: true,
    config,
    logger,
    now: options.now,
  });
  const verifier = createTokenVerifier({ issuer: common.tokenIssuer, keys: module.keys.keySet });
  const running = await startModules({ config: common, logger, modules: [module], verifier });
  const baseUrl = `http://127.0.0.1:${running.port}`;
  const transports = new Map<string, Transport>();
  const transport = (token: string | undefined, protocol: "grpc" | "connect") => {
    const key = `${protocol}:${token ?? ""}`;
    let t = transports.get(key);
    if (!t) {
      const auth: Interceptor = (next) => (req) => {
        if (token) req.header.set("authorization", `Bearer ${token}`);
        return next(req);
      };
      t =
        protocol === "grpc"
          ? createGrpcTransport({ baseUrl, interceptors: [auth] })
          : createConnectTransport({ baseUrl, httpVersion: "1.1", interceptors: [auth] });
      transports.set(key, t);
    }
    return t;
  };
  const sign = async (claims: VaneClaims, ttlMs = 60_000) => (await module.keys.sign(claims, ttlMs)).token;
  const db = module.database.db;
  return {
    module,
    running,
    baseUrl,
    schema,
    client: (service, token, protocol = "grpc") => createClient(service, transport(token, protocol)),
    sign,
    async seedTenant(slug = uniqueName("org").replace(/_/g, "-")) {
      const orgId = randomUUID();
      const projectId = randomUUID();
      const environmentId = randomUUID();
      const ownerUserId = randomUUID();
      const ownerMemberId = randomUUID();
      await db.insertInto("organizations").values({ id: orgId, name: slug, slug }).execute();
      await db
        .insertInto("users")
        .values({ id: ownerUserId, email: `owner@${slug}.test` })
        .execute();
      await db.insertInto("members").values({ id: ownerMemberId, organization_id: orgId, user_id: ownerUserId, role: "owner" }).execute();
      await db.insertInto("projects").values({ id: projectId, organization_id: orgId, key: "web", name: "Web" }).execute();
      await db
        .insertInto("environments")
        .values({ id: environmentId, project_id: projectId, organization_id: orgId, key: "production", name: "Production" })
        .execute();
      const ownerToken = await sign({ sub: ownerUserId, org: orgId, role: "owner", kind: "user" });
      return { orgId, projectId, environmentId, ownerUserId, ownerMemberId, ownerToken };
    },
    async close() {
      await running.stop();
      if (!options.keepSchema) await dropSchema(testDatabaseUrl, schema);
    },
  };
}
