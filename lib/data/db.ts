/**
 * Postgres access for services: a kysely instance over a pg pool whose
 * connections all live in the service's own schema, plus a typed view of
 * the pg errors that domain code needs to branch on.
 */
import { Kysely, sql, type IsolationLevel, type Transaction } from "kysely";
import pg from "pg";
import { pino, type Logger } from "pino";
import { OwnSchemaPostgresDialect } from "#lib/data/own-schema-introspector.ts";

/** Options for {@link createDatabase}. */
export interface DatabaseOptions {
  /** libpq-style connection URL, e.g. `postgres://user:pass@host:5432/db`. */
  url: string;
  /** The service's schema; every pooled connection uses it as `search_path`. */
  schema: string;
  /** Maximum pooled connections (default 10). */
  poolSize?: number;
  /** Server-side `statement_timeout` per statement in ms (default 10 000; 0 disables). */
  statementTimeoutMs?: number;
  /** How long to wait for a new connection in ms (default 5 000). */
  connectTimeoutMs?: number;
  /** Shown in `pg_stat_activity` (default: the schema name). */
  applicationName?: string;
  /** Receives pool errors (idle connections dropped by the server, etc.). */
  logger?: Logger;
  /** Create the schema if missing while starting (default true). */
  createSchema?: boolean;
}

/** A service's database handle returned by {@link createDatabase}. */
export interface Database<DB> {
  /** Typed query builder; unqualified table names resolve in {@link schema}. */
  readonly db: Kysely<DB>;
  /** The underlying pg pool, for the rare raw query or pool statistics. */
  readonly pool: pg.Pool;
  /** The service's schema name. */
  readonly schema: string;
  /** Round-trips `select 1`; rejects when the database is unreachable or `signal` aborts. */
  ping(signal?: AbortSignal): Promise<void>;
  /** Closes every pooled connection. Safe to call more than once. */
  destroy(): Promise<void>;
}

// Unquoted lower-case identifiers only: no quoting games in search_path or DDL.
const SCHEMA_NAME = /^[a-z_][a-z0-9_]{0,62}$/;

/** Throws unless `name` is a plain lower-case Postgres identifier usable as a schema name. */
export function assertSchemaName(name: string): void {
  if (!SCHEMA_NAME.test(name)) {
    throw new Error(`invalid schema name ${JSON.stringify(name)}: use lower-case letters, digits and _ (max 63)`);
  }
}

/**
 * Creates a pooled kysely database bound to one schema. The schema is created
 * if missing (under an advisory lock, so concurrent starts of several replicas
 * are safe) before the promise resolves.
 */
export async function createDatabase<DB>(options: DatabaseOptions): Promise<Database<DB>> {
  const { schema } = options;
  assertSchemaName(schema);
  const logger = options.logger ?? pino({ level: "silent" });
  const pool = new pg.Pool({
    connectionString: options.url,
    max: options.poolSize ?? 10,
    connectionTimeoutMillis: options.connectTimeoutMs ?? 5_000,
    idleTimeoutMillis: 30_000,
    application_name: options.applicationName ?? schema,
    // Set at connection start-up by the server itself: no extra round trip per
    // checkout, and it survives `RESET ALL`/`DISCARD ALL` of poolers.
    options: `-c search_path=${schema}`,
    statement_timeout: options.statementTimeoutMs ?? 10_000,
  });
  // Without a listener an idle client's error (server restart) crashes the process.
  pool.on("error", (err) => logger.warn({ err }, "idle postgres connection failed"));
  // A client checked out of the pool has no listener (pg-pool removes its own, kysely adds
  // none), yet emits "error" when its connection dies: a query in flight when Postgres goes
  // away would crash the process. The query fails with the same error, answered by the caller.
  pool.on("connect", (client) => client.on("error", (err) => logger.debug({ err }, "postgres connection failed")));
  const db = new Kysely<DB>({ dialect: new OwnSchemaPostgresDialect({ pool }, schema) });

  let destroyed: Promise<void> | undefined;
  const handle: Database<DB> = {
    db,
    pool,
    schema,
    ping: (signal) => ping(db, signal),
    destroy: () => (destroyed ??= db.destroy()),
  };
  if (options.createSchema ?? true) {
    try {
      await ensureSchema(pool, schema);
    } catch (err) {
      await handle.destroy();
      throw err;
    }
  }
  return handle;
}

/**
 * Creates `schema` if it does not exist. Serialised by a transaction-scoped
 * advisory lock because concurrent `CREATE SCHEMA IF NOT EXISTS` can still
 * fail with a unique violation on `pg_namespace`.
 */
export async function ensureSchema(pool: pg.Pool, schema: string): Promise<void> {
  assertSchemaName(schema);
  const client = await pool.connect();
  try {
    await client.query("begin");
    await client.query("select pg_advisory_xact_lock(hashtext($1))", [`vane:schema:${schema}`]);
    await client.query(`create schema if not exists ${schema}`);
    await client.query("commit");
  } catch (err) {
    await client.query("rollback").catch(() => undefined);
    // Someone without the lock (another tool) won the race: the schema exists.
    if (!(isUniqueViolation(err) || pgErrorCode(err) === PgErrorCode.DuplicateSchema)) throw err;
  } finally {
    client.release();
  }
}

async function ping<DB>(db: Kysely<DB>, signal?: AbortSignal): Promise<void> {
  signal?.throwIfAborted();
  const query = sql`select 1`.execute(db);
  if (!signal) {
    await query;
    return;
  }
  // pg cannot cancel a pooled query from a signal; stop waiting for it instead.
  let onAbort: (() => void) | undefined;
  const aborted = new Promise<never>((_, reject) => {
    onAbort = () => reject(signal.reason);
    signal.addEventListener("abort", onAbort, { once: true });
  });
  try {
    await Promise.race([query, aborted]);
  } finally {
    signal.removeEventListener("abort", onAbort!);
    query.catch(() => undefined);
  }
}

/** SQLSTATE codes the services branch on. */
export const PgErrorCode = {
  UniqueViolation: "23505",
  ForeignKeyViolation: "23503",
  NotNullViolation: "23502",
  CheckViolation: "23514",
  ExclusionViolation: "23P01",
  SerializationFailure: "40001",
  DeadlockDetected: "40P01",
  LockNotAvailable: "55P03",
  QueryCanceled: "57014",
  AdminShutdown: "57P01",
  CannotConnectNow: "57P03",
  DuplicateSchema: "42P06",
  UndefinedTable: "42P01",
} as const;

/** The SQLSTATE of a pg error, or undefined for anything else. */
export function pgErrorCode(err: unknown): string | undefined {
  if (typeof err !== "object" || err === null) return undefined;
  const code = (err as { code?: unknown }).code;
  // pg's DatabaseError carries a 5-character SQLSTATE; Node errors use "ECONN…".
  return typeof code === "string" && /^[0-9A-Z]{5}$/.test(code) ? code : undefined;
}

/** The constraint named by a constraint-violation error (e.g. `members_email_key`). */
export function pgConstraint(err: unknown): string | undefined {
  if (pgErrorCode(err) === undefined) return undefined;
  const constraint = (err as { constraint?: unknown }).constraint;
  return typeof constraint === "string" ? constraint : undefined;
}

/** A unique or primary-key constraint was violated (map to AlreadyExists). */
export function isUniqueViolation(err: unknown): boolean {
  return pgErrorCode(err) === PgErrorCode.UniqueViolation;
}

/** A foreign-key constraint was violated (a referenced row is missing, or still referenced). */
export function isForeignKeyViolation(err: unknown): boolean {
  return pgErrorCode(err) === PgErrorCode.ForeignKeyViolation;
}

/** A check, not-null or exclusion constraint was violated (usually a bug or bad input). */
export function isConstraintViolation(err: unknown): boolean {
  const code = pgErrorCode(err);
  return code !== undefined && code.startsWith("23");
}

/** A serializable transaction could not be serialised; retrying it may succeed. */
export function isSerializationFailure(err: unknown): boolean {
  return pgErrorCode(err) === PgErrorCode.SerializationFailure;
}

/** The transaction was chosen as a deadlock victim; retrying it may succeed. */
export function isDeadlock(err: unknown): boolean {
  return pgErrorCode(err) === PgErrorCode.DeadlockDetected;
}

/** Errors for which re-running the whole transaction is the documented remedy. */
export function isRetryableTransactionError(err: unknown): boolean {
  return isSerializationFailure(err) || isDeadlock(err);
}

/** The statement was cancelled: `statement_timeout` hit, or cancelled by an operator. */
export function isQueryCanceled(err: unknown): boolean {
  return pgErrorCode(err) === PgErrorCode.QueryCanceled;
}

/** `NOWAIT`/`lock_timeout` could not take a lock. */
export function isLockNotAvailable(err: unknown): boolean {
  return pgErrorCode(err) === PgErrorCode.LockNotAvailable;
}

const CONNECTION_ERRNOS = new Set(["ECONNREFUSED", "ECONNRESET", "ETIMEDOUT", "EHOSTUNREACH", "ENETUNREACH", "ENOTFOUND", "EAI_AGAIN", "EPIPE"]);

/**
 * The database is unreachable or going away (map to Unavailable): socket
 * errors, connection-class SQLSTATEs (08…), shutdowns, pool timeouts and a
 * pool already closed — also when wrapped, as the `cause` of another error
 * or among an AggregateError's errors (a refused connect to every address).
 */
export function isConnectionError(err: unknown): boolean {
  return someCause(err, isConnectionErrorItself);
}

function isConnectionErrorItself(err: unknown): boolean {
  const code = pgErrorCode(err);
  if (code !== undefined) {
    return code.startsWith("08") || code === PgErrorCode.AdminShutdown || code === PgErrorCode.CannotConnectNow;
  }
  if (typeof err !== "object" || err === null) return false;
  const errno = (err as { code?: unknown }).code;
  if (typeof errno === "string" && CONNECTION_ERRNOS.has(errno)) return true;
  const message = (err as { message?: unknown }).message;
  // pg and pg-pool report checkout timeouts and dead or closed connections only by message.
  return (
    typeof message === "string" &&
    /timeout exceeded when trying to connect|Connection terminated|connection timeout|not queryable|Cannot use a pool after calling end/i.test(message)
  );
}

/** True when `test` holds for `err`, its `cause`s or an AggregateError's errors (bounded depth). */
function someCause(err: unknown, test: (e: unknown) => boolean, depth = 0): boolean {
  if (err === undefined || err === null || depth > 5) return false;
  if (test(err)) return true;
  if (err instanceof AggregateError && err.errors.some((e) => someCause(e, test, depth + 1))) return true;
  return err instanceof Error && someCause(err.cause, test, depth + 1);
}

/** The statement was cancelled (`statement_timeout`, or an operator), also as a `cause`. */
export function isQueryCanceledCause(err: unknown): boolean {
  return someCause(err, isQueryCanceled);
}

/** A serialization failure or deadlock, also as a `cause` (retries were exhausted). */
export function isRetryableTransactionCause(err: unknown): boolean {
  return someCause(err, isRetryableTransactionError);
}

/** Options for {@link withTransaction}. */
export interface TransactionOptions {
  /** Isolation level (default: the server default, read committed). */
  isolation?: IsolationLevel;
  /** How many times to re-run after a serialization failure or deadlock (default 3). */
  retries?: number;
  /** Stop retrying when aborted. */
  signal?: AbortSignal;
}

/**
 * Runs `fn` in a transaction, re-running it from scratch (bounded by
 * `retries`) when Postgres reports a serialization failure or deadlock.
 * `fn` may therefore run more than once: keep side effects outside the
 * database (publishing, calling other services) out of it.
 */
export async function withTransaction<DB, T>(db: Kysely<DB>, fn: (trx: Transaction<DB>) => Promise<T>, options: TransactionOptions = {}): Promise<T> {
  const retries = options.retries ?? 3;
  for (let attempt = 0; ; attempt++) {
    options.signal?.throwIfAborted();
    let builder = db.transaction();
    if (options.isolation) builder = builder.setIsolationLevel(options.isolation);
    try {
      return await builder.execute(fn);
    } catch (err) {
      if (attempt >= retries || !isRetryableTransactionError(err)) throw err;
      // Small jittered pause so the conflicting transactions do not collide again in lockstep.
      await new Promise((resolve) => setTimeout(resolve, Math.random() * 5 * 2 ** attempt));
    }
  }
}
