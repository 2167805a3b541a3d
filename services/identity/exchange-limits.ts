/**
 * Limits on credential exchanges (ExchangeApiKey, ExchangeOidcToken), so guessing keys or
 * replaying ID tokens cannot run at the speed of the network:
 *
 * - per source (client address, lib/server/client-address.ts): a budget of points per window, a
 *   success costing 1 and a failure FAILURE_COST, so a backend fleet behind one address
 *   exchanges freely while a stream of wrong keys is stopped after a few dozen;
 * - per API key prefix (its public part, e.g. `vane_server_3q2x9a`): failed attempts per
 *   window, so guesses at one key's secret are throttled whatever their source.
 *
 * Over a budget the call is refused before the credential is even looked at (so a refusal says
 * nothing of whether it was right) with RESOURCE_EXHAUSTED and `Retry-After`: the seconds until
 * the fixed window ends.
 *
 * Failures are shared by every identity replica through identity's own Postgres (a counter row
 * per source or prefix and window, upserted; identity needs Postgres for every exchange anyway,
 * so sharing adds no dependency). Successes and the decision itself stay in memory: a replica
 * learns the shared count whenever it records a failure, so an attacker spread over replicas
 * gets at most one attempt more per replica and window than the budget, and the common case
 * (a correct credential) costs no extra query.
 */
import { Code, ConnectError, type HandlerContext } from "@connectrpc/connect";
import { metrics } from "@opentelemetry/api";
import { type Kysely, sql } from "kysely";
import type { Logger } from "#lib/process/logger.ts";
import type { IdentityDatabase } from "./schema.ts";
import { resourceExhausted } from "#lib/process/errors.ts";

/** Points a failed attempt costs against its source's budget (a success costs 1). */
export const FAILURE_COST = 10;

/** Settings of {@link createExchangeLimits}. */
export interface ExchangeLimitSettings {
  /** Length of the fixed window. */
  windowMs: number;
  /** Points per source per window (success 1, failure {@link FAILURE_COST}). */
  sourceBudget: number;
  /** Failed attempts per API key prefix per window. */
  keyFailures: number;
}

/** Options of {@link createExchangeLimits}. */
export interface ExchangeLimitsOptions extends ExchangeLimitSettings {
  db: Kysely<IdentityDatabase>;
  logger: Logger;
  /** The clock (tests drive windows with it). */
  now?: () => number;
  /** Entries kept in memory before they are dropped (default 100 000). */
  maxEntries?: number;
}

/** One exchange attempt. */
export interface Attempt {
  /** The source (lib/server/client-address.ts `sourceOf`). */
  source: string;
  /** The API key's public prefix, when the credential is a well-formed API key. */
  keyPrefix?: string;
}

/** Limits credential exchanges. */
export interface ExchangeLimits {
  /**
   * Runs `exchange` unless the attempt's source or key is over budget (RESOURCE_EXHAUSTED with
   * Retry-After), and counts its outcome: UNAUTHENTICATED is a failure, anything else thrown is
   * not the caller's doing and costs nothing.
   */
  guard<T>(attempt: Attempt, ctx: HandlerContext, exchange: () => Promise<T>): Promise<T>;
}

type Dimension = "source" | "key";

interface Entry {
  window: number;
  successes: number;
  failures: number;
  /** Attempts under way, counted as failures until they end (a concurrent burst gains nothing). */
  pending: number;
  /** The failures of every replica, as last read from the shared counter. */
  shared: number;
}

/** Creates the limits. */
export function createExchangeLimits(opts: ExchangeLimitsOptions): ExchangeLimits {
  const now = opts.now ?? Date.now;
  const maxEntries = opts.maxEntries ?? 100_000;
  const entries = new Map<string, Entry>();
  const refused = metrics.getMeter("vane.identity").createCounter("vane_identity_exchanges_refused", {
    description: "Credential exchanges refused by a rate limit (label limit: source or key)",
  });
  let sweptWindow = -1;
  let prunedWindow = -1;

  const windowOf = (t: number) => Math.floor(t / opts.windowMs);
  const entry = (dimension: Dimension, subject: string, window: number): Entry => {
    if (window !== sweptWindow) {
      for (const [k, e] of entries) if (e.window !== window) entries.delete(k);
      sweptWindow = window;
    }
    // A flood of distinct sources: forget this window's memory rather than grow without bound
    // (the shared failure counts are read again on the next failure).
    if (entries.size >= maxEntries) entries.clear();
    const k = `${dimension}\u0000${subject}`;
    let e = entries.get(k);
    if (!e || e.window !== window) entries.set(k, (e = { window, successes: 0, failures: 0, pending: 0, shared: 0 }));
    return e;
  };
  const failures = (e: Entry) => Math.max(e.failures, e.shared) + e.pending;

  function refuse(ctx: HandlerContext, t: number, limit: Dimension, message: string): never {
    refused.add(1, { limit });
    const retryAfter = Math.max(1, Math.ceil(((windowOf(t) + 1) * opts.windowMs - t) / 1000));
    ctx.responseHeader.set("retry-after", String(retryAfter));
    throw resourceExhausted(`${message}; retry in ${retryAfter} s`);
  }

  /** Adds one failure to the shared counters; returns their new totals. */
  async function share(attempt: Attempt, window: number): Promise<Map<Dimension, number>> {
    const windowStart = new Date(window * opts.windowMs);
    const rows = [
      { dimension: "source" as const, subject: attempt.source, window_start: windowStart, failures: 1 },
      ...(attempt.keyPrefix ? [{ dimension: "key" as const, subject: attempt.keyPrefix, window_start: windowStart, failures: 1 }] : []),
    ];
    const totals = await opts.db
      .insertInto("credential_failures")
      .values(rows)
      .onConflict((oc) => oc.columns(["dimension", "subject", "window_start"]).doUpdateSet({ failures: sql`credential_failures.failures + 1` }))
      .returning(["dimension", "failures"])
      .execute();
    if (window !== prunedWindow) {
      prunedWindow = window;
      await opts.db.deleteFrom("credential_failures").where("window_start", "<", windowStart).execute();
    }
    return new Map(totals.map((r) => [r.dimension, r.failures]));
  }

  return {
    async guard(attempt, ctx, exchange) {
      const t = now();
      const window = windowOf(t);
      const source = entry("source", attempt.source, window);
      if (source.successes + FAILURE_COST * failures(source) >= opts.sourceBudget) {
        refuse(ctx, t, "source", "too many credential exchanges from this address");
      }
      const key = attempt.keyPrefix ? entry("key", attempt.keyPrefix, window) : undefined;
      if (key && failures(key) >= opts.keyFailures) {
        refuse(ctx, t, "key", `too many failed attempts with API key ${attempt.keyPrefix}…`);
      }
      source.pending++;
      if (key) key.pending++;
      let outcome: "success" | "failure" | "neither" = "neither";
      try {
        const result = await exchange();
        outcome = "success";
        return result;
      } catch (err) {
        if (ConnectError.from(err).code !== Code.Unauthenticated) throw err;
        outcome = "failure";
        try {
          const totals = await share(attempt, window);
          source.shared = Math.max(source.shared, totals.get("source") ?? 0);
          if (key) key.shared = Math.max(key.shared, totals.get("key") ?? 0);
        } catch (shareErr) {
          // This replica's own count still holds; the answer is the credential's.
          opts.logger.warn({ err: shareErr }, "could not record a failed credential exchange for other replicas");
        }
        throw err;
      } finally {
        source.pending--;
        if (key) key.pending--;
        if (outcome === "success") source.successes++;
        if (outcome === "failure") {
          source.failures++;
          if (key) key.failures++;
        }
      }
    },
  };
}
