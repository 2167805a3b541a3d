/**
 * Configuration every service shares, read from `VANE_*` variables (DATABASE_URL and NATS_URL
 * are accepted too, as the usual names).
 */
import type { JetStreamManagement } from "#lib/bus/bus.ts";
import type { EnvReader } from "#lib/process/config.ts";

/** Settings shared by every service process. */
export interface CommonConfig {
  port: number;
  host: string;
  logLevel: string;
  databaseUrl: string | undefined;
  /** `VANE_DB_POOL_SIZE`: Postgres connections each service process may hold (default 10). */
  dbPoolSize: number;
  natsUrl: string | undefined;
  corsOrigins: string[];
  /** `iss` of Vane access tokens. */
  tokenIssuer: string;
  /** Where services that do not hold the signing keys fetch the JWKS. */
  jwksUrl: string | undefined;
  /** Apply pending migrations at start-up (production runs `npm run migrate` as a Job instead). */
  migrateOnStart: boolean;
  drainDelayMs: number;
  shutdownTimeoutMs: number;
  defaultTimeoutMs: number;
  /** `VANE_JETSTREAM_MANAGED`: "external" when an operator (NACK) owns streams and buckets; services then only verify them. */
  jetStream: JetStreamManagement;
}

/** Reads the shared settings. */
export function readCommonConfig(env: EnvReader): CommonConfig {
  return {
    port: env.int("VANE_PORT", 8080, { min: 0, max: 65535 }),
    host: env.string("VANE_HOST", "0.0.0.0"),
    logLevel: env.oneOf("VANE_LOG_LEVEL", "info", ["trace", "debug", "info", "warn", "error", "fatal", "silent"] as const),
    databaseUrl: env.url("VANE_DATABASE_URL", env.optional("DATABASE_URL"), ["postgres", "postgresql"]),
    dbPoolSize: env.int("VANE_DB_POOL_SIZE", 10, { min: 1, max: 200 }),
    natsUrl: env.url("VANE_NATS_URL", env.optional("NATS_URL"), ["nats", "tls", "ws", "wss"]),
    corsOrigins: env.origins("VANE_CORS_ORIGINS", ["*"]),
    tokenIssuer: env.string("VANE_TOKEN_ISSUER", "vane"),
    jwksUrl: env.url("VANE_JWKS_URL", undefined, ["http", "https"]),
    migrateOnStart: env.bool("VANE_MIGRATE_ON_START", true),
    drainDelayMs: env.durationMs("VANE_DRAIN_DELAY", "5s"),
    shutdownTimeoutMs: env.durationMs("VANE_SHUTDOWN_TIMEOUT", "20s"),
    defaultTimeoutMs: env.durationMs("VANE_DEFAULT_TIMEOUT", "30s"),
    jetStream: env.oneOf("VANE_JETSTREAM_MANAGED", "service", ["service", "external"] as const),
  };
}
