/**
 * Assembles the identity service: database and migrations, signing keys, the two Connect
 * services, the JWKS route and readiness.
 */
import { IdentityService } from "#gen/vane/identity/v1/identity_service_pb.js";
import { AuthService } from "#gen/vane/identity/v1/auth_service_pb.js";
import { createDatabase } from "#lib/data/db.ts";
import type { Logger } from "#lib/process/logger.ts";
import { migrateToLatest } from "#lib/data/migrations.ts";
import { serve } from "#lib/server/server.ts";
import type { ServiceModule } from "#lib/process/service-module.ts";
import { createAuthService } from "./auth-service.ts";
import type { IdentityConfig } from "./config.ts";
import { createExchangeLimits } from "./exchange-limits.ts";
import { createIdentityService } from "./identity-service.ts";
import { migrations } from "./migrations/index.ts";
import { createOidcVerifier } from "./oidc.ts";
import type { IdentityDatabase } from "./schema.ts";
import { createKeyRing, type KeyRing } from "./signing-keys.ts";

/** Options for {@link createIdentityModule}. */
export interface IdentityModuleOptions {
  databaseUrl: string;
  /** Postgres connections the module may hold (VANE_DB_POOL_SIZE; default 10). */
  databasePoolSize?: number;
  /** Postgres schema (default "identity"; tests use unique names). */
  schema?: string;
  tokenIssuer: string;
  migrate: boolean;
  config: IdentityConfig;
  logger: Logger;
  /** The clock of the exchange limits' windows (tests). */
  now?: () => number;
}

/** The identity module, with its key ring for in-process token verification. */
export interface IdentityModule extends ServiceModule {
  keys: KeyRing;
  database: Awaited<ReturnType<typeof createDatabase<IdentityDatabase>>>;
}

/** Creates and starts the identity service's parts. */
export async function createIdentityModule(opts: IdentityModuleOptions): Promise<IdentityModule> {
  const logger = opts.logger.child({ service: "identity" });
  const schema = opts.schema ?? "identity";
  const database = await createDatabase<IdentityDatabase>({ url: opts.databaseUrl, schema, logger, poolSize: opts.databasePoolSize });
  try {
    if (opts.migrate) await migrateToLatest(database.db, migrations, { schema, logger });
    const keys = createKeyRing(database.db, {
      issuer: opts.tokenIssuer,
      maxTokenTtlMs: Math.max(opts.config.keyTokenTtlMs, opts.config.userTokenTtlMs),
      rotateAfterMs: opts.config.signingKeyRotateAfterMs,
      refreshMs: opts.config.signingKeyRefreshMs,
      publishAheadMs: opts.config.signingKeyPublishAheadMs,
      logger,
    });
    await keys.start();
    const { oidcIssuer, oidcAudience } = opts.config;
    const oidc = oidcIssuer && oidcAudience ? createOidcVerifier({ issuer: oidcIssuer, audience: oidcAudience }) : undefined;
    return {
      name: "identity",
      keys,
      database,
      services: [
        serve(IdentityService, createIdentityService(database.db)),
        serve(
          AuthService,
          createAuthService({
            db: database.db,
            keys,
            keyTokenTtlMs: opts.config.keyTokenTtlMs,
            userTokenTtlMs: opts.config.userTokenTtlMs,
            oidc,
            signInOptions: oidcIssuer && opts.config.oidcClientId ? { issuer: oidcIssuer, clientId: opts.config.oidcClientId } : undefined,
            limits: createExchangeLimits({ db: database.db, logger, now: opts.now, ...opts.config.exchangeLimits }),
            trustedProxyHops: opts.config.trustedProxyHops,
          }),
        ),
      ],
      publicProcedures: [`/${AuthService.typeName}/ExchangeApiKey`, `/${AuthService.typeName}/ExchangeOidcToken`, `/${AuthService.typeName}/GetSignInOptions`],
      httpRoutes: {
        "/.well-known/jwks.json": (_req, res) => {
          // Verifiers cache it themselves; an HTTP cache in between would delay rotations and revocations.
          res.writeHead(200, { "content-type": "application/jwk-set+json", "cache-control": "no-cache" });
          res.end(JSON.stringify(keys.jwks()));
        },
      },
      healthChecks: { postgres: (signal) => database.ping(signal) },
      async stop() {
        keys.stop();
        await database.destroy();
      },
    };
  } catch (err) {
    await database.destroy();
    throw err;
  }
}
