/**
 * Runs the pipeline over the partitioned events layout (lib/bus/partitions.ts). With one
 * partition it is the one pipeline on the events stream, as before. With P > 1 every replica
 * claims a fair share of the P partition streams (P / replicas, rounded up) and runs a pipeline
 * on each, and one replica also drains the unpartitioned stream (events published before the
 * upgrade, or by a publisher not yet upgraded).
 *
 * Claims are Postgres session advisory locks on one connection held for the purpose: a replica
 * that dies or loses Postgres loses its claims with its connection, and the others take its
 * partitions on their next round. Replicas count each other by a lock each holds (`pg_locks`).
 * Claims only spread the work: correctness never depends on them. Each partition's batches are
 * applied under that partition's transaction lock, with its own position and the shared dedupe
 * keys, so two replicas briefly running one partition (a claim handed over while a batch is in
 * hand) still apply every event once, in order.
 */
import { sql } from "kysely";
import { eventsLayout } from "#lib/bus/partitions.ts";
import type { Db } from "../store.ts";
import { type Pipeline, type PipelineOptions, startPipeline } from "./consumer.ts";

/** Options for {@link startPartitionedPipeline}. */
export interface PartitionedPipelineOptions extends Omit<PipelineOptions, "positionKey" | "sharedLock"> {
  /** `VANE_EVENTS_PARTITIONS`: the partition streams to consume (the publishers' setting). */
  partitions: number;
  /** How often a replica counts the replicas and claims or hands back partitions. Default 2 s. */
  claimIntervalMs?: number;
}

type Stats = ReturnType<Pipeline["stats"]>;

/** The pipelines of one replica. */
export interface PartitionedPipeline {
  readonly consumerName: string;
  /** The streams this replica runs a pipeline on now. */
  held(): string[];
  /** Summed over every pipeline this replica has run. */
  stats(): Stats;
  stop(): Promise<void>;
}

interface Unit {
  /** 0: the unpartitioned stream; i + 1: partition i. */
  index: number;
  stream: string;
  positionKey: string;
  sharedLock?: string;
}

const zero = (): Stats => ({ processed: 0, duplicates: 0, redeliveries: 0, batches: 0, orderWaits: 0, gapFills: 0 });
const add = (a: Stats, b: Stats): Stats => {
  const out = { ...a };
  for (const k of Object.keys(out) as (keyof Stats)[]) out[k] += b[k];
  return out;
};

/** Starts this replica's share of the pipelines. */
export async function startPartitionedPipeline(opts: PartitionedPipelineOptions): Promise<PartitionedPipeline> {
  const name = opts.consumerName ?? "analytics";
  if (opts.partitions <= 1) {
    const single = await startPipeline(opts);
    return { consumerName: name, held: () => [opts.stream], stats: () => single.stats(), stop: () => single.stop() };
  }
  const log = opts.logger.child({ component: "partitions", consumer: name });
  const layout = eventsLayout(opts.stream, opts.partitions);
  const units: Unit[] = [
    { index: 0, stream: layout.legacy.name, positionKey: name },
    ...layout.partitionStreams.map((s, i) => ({ index: i + 1, stream: s.name, positionKey: `${name}:${s.name}`, sharedLock: name })),
  ];
  const running = new Map<number, Pipeline>();
  let finished = zero();
  let stopping = false;
  let wake: (() => void) | undefined;
  const pause = (ms: number) => new Promise<void>((r) => ((wake = r), setTimeout(r, ms).unref()));
  const interval = opts.claimIntervalMs ?? 2_000;
  // Keys of the two-int form: (hash of schema and consumer, slot). Per database, so the schema is in the hash.
  const claimKey = sql`hashtext(current_schema() || ${`:vane:analytics:claim:${name}`})`;
  const memberKey = sql`hashtext(current_schema() || ${`:vane:analytics:member:${name}`})`;

  const release = async (db: Db, unit: Unit) => {
    const p = running.get(unit.index);
    running.delete(unit.index);
    if (p) {
      await p.stop();
      finished = add(finished, p.stats());
    }
    await sql`select pg_advisory_unlock(${claimKey}, ${unit.index})`.execute(db);
    log.info({ stream: unit.stream }, "handed back a partition");
  };
  const claim = async (db: Db, unit: Unit) => {
    const { rows } = await sql<{ ok: boolean }>`select pg_try_advisory_lock(${claimKey}, ${unit.index}) as ok`.execute(db);
    if (!rows[0].ok) return false;
    try {
      running.set(unit.index, await startPipeline({ ...opts, stream: unit.stream, positionKey: unit.positionKey, sharedLock: unit.sharedLock }));
    } catch (err) {
      await sql`select pg_advisory_unlock(${claimKey}, ${unit.index})`.execute(db);
      throw err;
    }
    log.info({ stream: unit.stream }, "claimed a partition");
    return true;
  };
  const stopAll = async () => {
    for (const [index, p] of [...running]) {
      running.delete(index);
      await p.stop().catch((err: unknown) => log.warn({ err }, "stopping a partition's pipeline failed"));
      finished = add(finished, p.stats());
    }
  };

  /** One claim session: on one connection, until stopped or the connection fails. */
  const session = () =>
    opts.db.connection().execute(async (db) => {
      try {
        let slot = 0;
        for (let ok = false; !ok;) {
          slot = Math.floor(Math.random() * 0x7fffffff);
          ok = (await sql<{ ok: boolean }>`select pg_try_advisory_lock(${memberKey}, ${slot}) as ok`.execute(db)).rows[0].ok;
        }
        while (!stopping) {
          const { rows } = await sql<{ n: number }>`
            select count(*)::int as n from pg_locks
            where locktype = 'advisory' and granted and objsubid = 2
              and database = (select oid from pg_database where datname = current_database())
              and classid::bigint = (${memberKey}::bigint & 4294967295)`.execute(db);
          const share = Math.ceil(opts.partitions / Math.max(1, rows[0].n));
          const held = units.filter((u) => u.index > 0 && running.has(u.index));
          for (const u of held.slice(share)) await release(db, u);
          let count = Math.min(held.length, share);
          for (const u of units) {
            if (stopping || count >= share) break;
            if (u.index > 0 && !running.has(u.index) && (await claim(db, u))) count++;
          }
          // The unpartitioned stream: whoever gets it (it is quiet once drained).
          if (!stopping && !running.has(0)) await claim(db, units[0]);
          if (!stopping) await pause(interval);
        }
      } finally {
        await stopAll();
        await sql`select pg_advisory_unlock_all()`.execute(db).catch(() => undefined);
      }
    });

  const loop = (async () => {
    while (!stopping) {
      try {
        await session();
      } catch (err) {
        if (stopping) break;
        log.error({ err }, "claiming partitions failed; their pipelines stopped, retrying");
        await pause(1_000);
      }
    }
  })();
  log.info({ partitions: opts.partitions }, "partitioned pipeline started");
  return {
    consumerName: name,
    held: () => units.filter((u) => running.has(u.index)).map((u) => u.stream),
    stats: () => [...running.values()].reduce((s, p) => add(s, p.stats()), finished),
    async stop() {
      stopping = true;
      wake?.();
      await loop;
    },
  };
}
