/**
 * The transactional outbox's relay. A service writes outbox rows in the same transaction as the
 * change they announce; the relay publishes them in id order per ordering key (an environment, a
 * flag: `ordering_key`, else the target), marking each published. A row that fails is retried with
 * backoff while other keys go on, so one key's failure never holds back another's; after
 * `maxAttempts` failures it is parked (`parked_at`, `last_error`), counted by the
 * `vane_outbox_parked` gauge (an alert), and the key's later rows go on. Parked rows wait for an
 * operator: the service's republish command supersedes them. The oldest row that has failed at
 * least once and is still unpublished, parked or not, is the stuck one: its age is the
 * `vane_outbox_stuck_age_seconds` gauge and {@link OutboxRelay.stuck} (the service's readiness).
 *
 * Exactly one relay publishes at a time across replicas: the leader holds a session advisory lock
 * on a dedicated connection (FOR UPDATE SKIP LOCKED would let two replicas publish out of order).
 * If that connection dies (Postgres restart, network), the lock goes with it and any replica takes
 * over from the first unpublished row. A row may therefore be published twice (crash between
 * publish and mark); publishers make that harmless (JetStream message ids, versioned KV writes).
 *
 * The leader LISTENs on a channel the writers NOTIFY in their transaction, and polls as a fallback.
 */
import { metrics, type ObservableGauge, type ObservableResult } from "@opentelemetry/api";
import type pg from "pg";
import { pino, type Logger } from "pino";
import { sql, type Kysely } from "kysely";

/** An outbox row as the relay hands it to `publish`. */
export interface OutboxRecord {
  id: string;
  kind: string;
  /** Subject, KV key, … — whatever the service's publisher needs. */
  target: string;
  payload: Uint8Array;
  msgId: string;
  headers: Record<string, string>;
}

/** Options for {@link createOutboxRelay}. */
export interface OutboxRelayOptions {
  /** The service's pool; its connections' search_path must contain `table`. */
  pool: pg.Pool;
  /**
   * The outbox table (default "outbox"): `id bigserial, kind, target, payload bytea, msg_id, headers jsonb,
   * created_at timestamptz, published_at`, and for per-key order and parking `ordering_key text, attempts int,
   * parked_at, last_error`.
   */
  table?: string;
  /** NOTIFY channel writers signal on (see {@link notifyOutbox}). */
  channel: string;
  /** Advisory-lock name: one leader per name. */
  lockName: string;
  /** Publishes one record; throws to be retried. */
  publish(record: OutboxRecord): Promise<void>;
  logger?: Logger;
  /** Rows read per query (default 100). */
  batchSize?: number;
  /** Poll interval when no notification arrives, in ms (default 1 000). */
  pollIntervalMs?: number;
  /** First and largest pause between publish attempts of one key, in ms (default 100 and 5 000). */
  retryMinMs?: number;
  retryMaxMs?: number;
  /** Failed attempts after which a row is parked (default 20). */
  maxAttempts?: number;
  /** Label of the `vane_outbox_backlog` gauge (default: the table name). */
  name?: string;
}

/** The oldest unpublished row that has failed to publish at least once. */
export interface StuckOutboxRow {
  id: string;
  kind: string;
  target: string;
  attempts: number;
  parked: boolean;
  /** Seconds since the row was written. */
  ageSeconds: number;
  lastError: string;
}

/** A running relay. */
export interface OutboxRelay {
  /** The oldest row that keeps failing, as last seen by the leader (undefined on followers and when none). */
  stuck(): StuckOutboxRow | undefined;
  /** Unpublished rows, as last counted by the leader (0 on followers). */
  backlog(): number;
  /** Parked rows, as last counted by the leader (0 on followers). */
  parked(): number;
  /** True while this relay holds the lock. */
  isLeader(): boolean;
  /** Resolves once no unpublished row is left (for tests and graceful stops). */
  drained(timeoutMs?: number): Promise<void>;
  /** Stops publishing (a row being retried stays unpublished) and releases the lock. */
  stop(): Promise<void>;
}

const IDENT = /^[a-z_][a-z0-9_]{0,62}$/;

/** NOTIFYs the relay from inside the writing transaction (delivered at commit), whatever the service's schema type. */
// eslint-disable-next-line @typescript-eslint/no-explicit-any
export async function notifyOutbox(db: Kysely<any>, channel: string): Promise<void> {
  await sql`select pg_notify(${channel}, '')`.execute(db);
}

let gauge: ObservableGauge | undefined;
let parkedGauge: ObservableGauge | undefined;
let stuckGauge: ObservableGauge | undefined;
const relays = new Set<{ name: string; backlog: () => number; parked: () => number; stuck: () => StuckOutboxRow | undefined; leader: () => boolean }>();
function observe(result: ObservableResult): void {
  for (const r of relays) if (r.leader()) result.observe(r.backlog(), { outbox: r.name });
}
function observeParked(result: ObservableResult): void {
  for (const r of relays) if (r.leader()) result.observe(r.parked(), { outbox: r.name });
}
function observeStuck(result: ObservableResult): void {
  for (const r of relays) if (r.leader()) result.observe(r.stuck()?.ageSeconds ?? 0, { outbox: r.name });
}

/** Starts a relay; it runs until {@link OutboxRelay.stop}. */
export function createOutboxRelay(opts: OutboxRelayOptions): OutboxRelay {
  const table = opts.table ?? "outbox";
  if (!IDENT.test(table) || !IDENT.test(opts.channel)) throw new Error("outbox table and channel must be plain lower-case identifiers");
  const logger = opts.logger ?? pino({ level: "silent" });
  const batchSize = opts.batchSize ?? 100;
  const pollMs = opts.pollIntervalMs ?? 1_000;
  const retryMin = opts.retryMinMs ?? 100;
  const retryMax = opts.retryMaxMs ?? 5_000;
  const maxAttempts = opts.maxAttempts ?? 20;
  const stopping = new AbortController();
  let leader = false;
  let backlog = 0;
  let parked = 0;
  let stuck: StuckOutboxRow | undefined;
  let wake: (() => void) | undefined;
  let queries = 0;
  const waiters = new Map<() => void, number>();

  const entry = { name: opts.name ?? table, backlog: () => backlog, parked: () => parked, stuck: () => (leader ? stuck : undefined), leader: () => leader };
  relays.add(entry);
  gauge ??= metrics.getMeter("vane.outbox").createObservableGauge("vane_outbox_backlog", { description: "outbox rows not yet published" });
  parkedGauge ??= metrics
    .getMeter("vane.outbox")
    .createObservableGauge("vane_outbox_parked", { description: "outbox rows parked after repeated publish failures" });
  stuckGauge ??= metrics.getMeter("vane.outbox").createObservableGauge("vane_outbox_stuck_age_seconds", {
    description: "age of the oldest outbox row that has failed to publish and is still unpublished (parked or retrying); 0 when none",
    unit: "s",
  });
  if (relays.size === 1) {
    gauge.addCallback(observe);
    parkedGauge.addCallback(observeParked);
    stuckGauge.addCallback(observeStuck);
  }

  const sleep = (ms: number) =>
    new Promise<void>((resolve) => {
      const t = setTimeout(done, ms);
      function done() {
        clearTimeout(t);
        wake = undefined;
        stopping.signal.removeEventListener("abort", done);
        resolve();
      }
      wake = done;
      stopping.signal.addEventListener("abort", done, { once: true });
    });

  const backoff = (attempts: number) => Math.min(retryMax, retryMin * 2 ** Math.min(attempts - 1, 16)) * (0.5 + Math.random() / 2);

  const oldestFailing = async (client: pg.PoolClient): Promise<StuckOutboxRow | undefined> => {
    const { rows } = await client.query<{
      id: string;
      kind: string;
      target: string;
      attempts: number;
      parked: boolean;
      age: number;
      last_error: string | null;
    }>(
      `select id, kind, target, attempts, parked_at is not null as parked, extract(epoch from now() - created_at)::float8 as age, last_error
         from ${table} where published_at is null and attempts > 0 order by id limit 1`,
    );
    const r = rows[0];
    return (
      r && { id: r.id, kind: r.kind, target: r.target, attempts: r.attempts, parked: r.parked, ageSeconds: Math.max(0, r.age), lastError: r.last_error ?? "" }
    );
  };

  const lead = async (client: pg.PoolClient) => {
    await client.query(`listen ${opts.channel}`);
    client.on("notification", () => wake?.());
    // Keys whose last attempt failed, with the earliest time of the next one.
    const retryAt = new Map<string, number>();
    while (!stopping.signal.aborted) {
      const query = ++queries;
      const now = Date.now();
      for (const [key, at] of retryAt) if (at <= now) retryAt.delete(key);
      const waiting = [...retryAt.keys()];
      const { rows } = await client.query<{
        id: string;
        kind: string;
        target: string;
        payload: Buffer;
        msg_id: string;
        headers: Record<string, string>;
        key: string;
        attempts: number;
      }>(
        `select id, kind, target, payload, msg_id, headers, coalesce(ordering_key, target) as key, attempts from ${table}
          where published_at is null and parked_at is null and coalesce(ordering_key, target) <> all($2::text[])
          order by id limit $1`,
        [batchSize, waiting],
      );
      const counts = await client.query<{ pending: string; parked: string }>(
        `select count(*) filter (where parked_at is null) as pending, count(*) filter (where parked_at is not null) as parked from ${table} where published_at is null`,
      );
      backlog = Number(counts.rows[0].pending);
      parked = Number(counts.rows[0].parked);
      stuck = backlog + parked === 0 ? undefined : await oldestFailing(client);
      if (rows.length === 0) {
        if (retryAt.size === 0) for (const [w, since] of waiters) if (query > since) w();
        await sleep(retryAt.size === 0 ? pollMs : Math.max(5, Math.min(pollMs, Math.min(...retryAt.values()) - Date.now())));
        continue;
      }
      // Rows of one key in id order; a failure stops that key for this round, never the others.
      const failed = new Set<string>();
      for (const row of rows) {
        stopping.signal.throwIfAborted();
        if (failed.has(row.key)) continue;
        try {
          await opts.publish({ id: row.id, kind: row.kind, target: row.target, payload: new Uint8Array(row.payload), msgId: row.msg_id, headers: row.headers });
        } catch (err) {
          failed.add(row.key);
          const attempts = row.attempts + 1;
          const error = String((err as Error)?.message ?? err).slice(0, 1000);
          if (attempts >= maxAttempts) {
            await client.query(`update ${table} set attempts = $2, last_error = $3, parked_at = now() where id = $1`, [row.id, attempts, error]);
            logger.error(
              { err, outboxId: row.id, kind: row.kind, target: row.target, key: row.key, attempts },
              "outbox message parked after repeated publish failures; the key's later messages go on",
            );
            parked++;
          } else {
            await client.query(`update ${table} set attempts = $2, last_error = $3 where id = $1`, [row.id, attempts, error]);
            if (attempts === 1 || attempts % 5 === 0)
              logger.warn({ err, outboxId: row.id, kind: row.kind, target: row.target, key: row.key, attempts }, "outbox publish failed; retrying");
            retryAt.set(row.key, Date.now() + backoff(attempts));
          }
          continue;
        }
        await client.query(`update ${table} set published_at = now() where id = $1`, [row.id]);
        backlog = Math.max(0, backlog - 1);
      }
    }
  };

  const loop = (async () => {
    let failures = 0;
    while (!stopping.signal.aborted) {
      let client: pg.PoolClient | undefined;
      let broken = false;
      try {
        client = await opts.pool.connect();
        client.on("error", (err) => logger.warn({ err }, "outbox relay connection failed"));
        const { rows } = await client.query<{ ok: boolean }>("select pg_try_advisory_lock(hashtext($1)) as ok", [opts.lockName]);
        if (!rows[0].ok) {
          client.release();
          client = undefined;
          await sleep(pollMs);
          continue;
        }
        leader = true;
        failures = 0;
        logger.info({ lock: opts.lockName }, "outbox relay leading");
        await lead(client);
      } catch (err) {
        broken = true;
        if (!stopping.signal.aborted) {
          failures++;
          logger.warn({ err, failures }, "outbox relay interrupted; restarting");
        }
      } finally {
        leader = false;
        // Destroying the connection releases the session lock and the LISTEN with it.
        client?.release(true);
      }
      if (broken && !stopping.signal.aborted) await sleep(Math.min(retryMax, retryMin * 2 ** Math.min(failures, 16)));
    }
  })();

  return {
    backlog: () => backlog,
    parked: () => parked,
    stuck: entry.stuck,
    isLeader: () => leader,
    drained(timeoutMs = 30_000) {
      return new Promise<void>((resolve, reject) => {
        const timer = setTimeout(() => {
          waiters.delete(done);
          reject(new Error(`outbox not drained after ${timeoutMs} ms (backlog ${backlog})`));
        }, timeoutMs);
        function done() {
          clearTimeout(timer);
          waiters.delete(done);
          resolve();
        }
        waiters.set(done, queries);
        wake?.();
      });
    },
    async stop() {
      stopping.abort();
      wake?.();
      await loop;
      relays.delete(entry);
      if (relays.size === 0) {
        gauge?.removeCallback(observe);
        parkedGauge?.removeCallback(observeParked);
        stuckGauge?.removeCallback(observeStuck);
      }
    },
  };
}
