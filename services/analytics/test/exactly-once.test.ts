/**
 * Exactly once under crashes: child processes (one replica on the one events stream; two
 * replicas on two partition streams, claiming them from each other) run the pipeline while a
 * known stream of events is published; each is SIGKILLed many times and restarted — each time
 * only after it has committed a batch since its start, at a random moment while it works — and
 * each also kills itself between a commit and the acknowledgement. The final aggregates must equal
 * the ground truth computed here from the streams themselves (see pipeline-reference.ts). Event
 * times are shuffled against arrival order, so exposures often arrive after events that belong
 * after them.
 */
import { type ChildProcess, spawn } from "node:child_process";
import { randomUUID } from "node:crypto";
import { fileURLToPath } from "node:url";
import { create, toBinary } from "@bufbuild/protobuf";
import { timestampFromDate } from "@bufbuild/protobuf/wkt";
import { sql } from "kysely";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { EventEnvelopeSchema } from "#gen/vane/events/v1/events_pb.js";
import { type Bus, connectBus, ensureStream } from "#lib/bus/bus.ts";
import { createDatabase, type Database } from "#lib/data/db.ts";
import { migrateToLatest } from "#lib/data/migrations.ts";
import { eventsLayout } from "#lib/bus/partitions.ts";
import { createTestLogger, deleteStreams, dropSchema, eventually, testDatabaseUrl, testNatsUrl, uniqueName } from "#test/support/harness.ts";
import { decodeEvent, type PipelineEvent } from "../pipeline/consumer.ts";
import { migrations } from "../migrations/index.ts";
import type { AnalyticsDatabase } from "../schema.ts";
import { reference, type RefExperiment } from "./pipeline-reference.ts";

const child = fileURLToPath(new URL("./pipeline-child.ts", import.meta.url));
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe.each([
  { replicas: 1, partitions: 1 },
  { replicas: 2, partitions: 2 },
])("pipeline exactly once: $replicas replica(s), $partitions partition(s)", ({ replicas, partitions }) => {
  const schema = uniqueName("analytics_eo");
  const streamName = uniqueName("EVENTS_EO").toUpperCase();
  const layout = eventsLayout(streamName, partitions);
  const streams = partitions > 1 ? layout.partitionStreams.map((s) => s.name) : [streamName];
  let database: Database<AnalyticsDatabase>;
  let bus: Bus;
  const org = randomUUID();
  const project = randomUUID();
  const env = randomUUID();
  const metrics = {
    converted: { id: randomUUID(), eventName: "purchase", kind: "conversion" as const },
    revenue: { id: randomUUID(), eventName: "purchase", kind: "sum" as const },
    clicks: { id: randomUUID(), eventName: "click", kind: "count" as const },
    latency: { id: randomUUID(), eventName: "load", kind: "mean" as const },
  };
  const experiments: RefExperiment[] = [
    { id: randomUUID(), environmentId: env, variants: ["control", "treatment"], metrics: [metrics.converted, metrics.revenue, metrics.clicks] },
    { id: randomUUID(), environmentId: env, variants: ["a", "b", "c"], metrics: [metrics.latency, metrics.clicks] },
  ];

  beforeAll(async () => {
    const logger = createTestLogger();
    database = await createDatabase<AnalyticsDatabase>({ url: testDatabaseUrl, schema, logger });
    await migrateToLatest(database.db, migrations, { schema, logger });
    bus = await connectBus({ servers: testNatsUrl, name: "eo-test", logger });
    for (const spec of [layout.legacy, ...layout.partitionStreams]) await ensureStream(bus.jsm, spec);
    for (const [key, m] of Object.entries(metrics)) {
      await database.db
        .insertInto("metrics")
        .values({ id: m.id, organization_id: org, project_id: project, key, name: key, event_name: m.eventName, kind: m.kind, direction: "increase" })
        .execute();
    }
    for (const [i, x] of experiments.entries()) {
      await database.db
        .insertInto("experiments")
        .values({
          id: x.id,
          organization_id: org,
          project_id: project,
          environment_id: env,
          flag_key: `f${i}`,
          key: `x${i}`,
          name: `x${i}`,
          hypothesis: "",
          variants: JSON.stringify(x.variants.map((variant) => ({ variant, weight: 1 }))),
          control_variant: x.variants[0],
          metric_keys: JSON.stringify({ primary: [], secondary: [], guardrail: [] }),
          metric_ids: JSON.stringify(Object.fromEntries(x.metrics.map((m) => [m.id, m.id]))),
          layer_key: "",
          layer_share_percent: 0,
          shipped_variant: "",
          status: "running",
          start_time: new Date(),
          bandit: null,
          saved_environment: null,
          version: 1,
        })
        .execute();
    }
  });
  afterAll(async () => {
    await database?.destroy();
    await dropSchema(testDatabaseUrl, schema);
    if (bus) {
      await deleteStreams(bus.nc, [streamName, ...streams]);
      await bus.drain();
    }
  });

  /** A deterministic-enough workload: pre-exposure events, exposures, conflicts, post events, duplicates. */
  function workload(n: number): { subject: string; msgId: string; data: Uint8Array }[] {
    const out: { subject: string; msgId: string; data: Uint8Array }[] = [];
    const late: { at: number; m: { subject: string; msgId: string; data: Uint8Array } }[] = [];
    const units = Array.from({ length: 600 }, (_, i) => `u${i}`);
    const base = Date.now();
    // Times within a minute, independent of the publishing order.
    const at = () => timestampFromDate(new Date(base + Math.floor(Math.random() * 60_000)));
    const pick = <T>(a: readonly T[]) => a[Math.floor(Math.random() * a.length)];
    for (let i = 0; i < n; i++) {
      const eventId = randomUUID();
      const unitKey = pick(units);
      const r = Math.random();
      let payload: ConstructorParameters<typeof Object>[0];
      let kind: "track" | "exposure";
      if (r < 0.25) {
        const x = pick(experiments);
        // Mostly the unit's "true" variant; sometimes another (a conflict).
        const idx = Number(unitKey.slice(1)) % x.variants.length;
        const variant = Math.random() < 0.05 ? pick(x.variants) : x.variants[idx];
        kind = "exposure";
        payload = { case: "exposure", value: { flagKey: "f", variant, experimentId: x.id, unitKey, time: at() } };
      } else {
        const name = pick(["purchase", "click", "load", "other"]);
        kind = "track";
        payload = { case: "track", value: { eventId, name, unitKey, value: 1 + Math.floor(Math.random() * 50) } };
      }
      const data = toBinary(
        EventEnvelopeSchema,
        create(EventEnvelopeSchema, { eventId, organizationId: org, projectId: project, environmentId: env, receiveTime: at(), payload: payload as never }),
      );
      const { subject } = layout.route(env, unitKey, kind);
      out.push({ subject, msgId: eventId, data });
      // A client retry after the stream's duplicate window: a second message with the same event id.
      if (Math.random() < 0.03) late.push({ at: i + 500 + Math.floor(Math.random() * 3000), m: { subject, msgId: `${eventId}-late`, data } });
    }
    // Re-publish them well after the original, so they arrive in a later batch.
    for (const l of late.sort((a, b) => b.at - a.at)) out.splice(Math.min(l.at, out.length), 0, l.m);
    return out;
  }

  it("counts every event once across SIGKILLs of the replicas while they work and after commits", async () => {
    const consumer = uniqueName("analytics");
    // A short ack wait, so the batch a killed child held comes back soon after the restart; a
    // short claim interval, so a killed replica's partitions are taken over soon.
    const args = JSON.stringify({
      databaseUrl: testDatabaseUrl,
      schema,
      natsUrl: testNatsUrl,
      stream: streamName,
      partitions,
      consumer,
      batchSize: 150,
      ackWaitMs: 1000,
      crashAfterCommit: 0,
    });
    const crashingArgs = args.replace('"crashAfterCommit":0', '"crashAfterCommit":0.3');
    const procs = new Set<ChildProcess>();
    /** What a child reported since it started. */
    type Progress = { commits: number; applied: number; lastCommit: number };
    const startChild = async (argv = args): Promise<{ p: ChildProcess; progress: Progress }> => {
      const p = spawn(process.execPath, ["--import", "tsx", child, argv], { stdio: ["ignore", "pipe", "inherit"] });
      procs.add(p);
      p.once("exit", () => procs.delete(p));
      const progress = { commits: 0, applied: 0, lastCommit: 0 };
      await new Promise<void>((resolve, reject) => {
        let buffered = "";
        p.stdout!.on("data", (d: Buffer) => {
          buffered += d.toString();
          const lines = buffered.split("\n");
          buffered = lines.pop()!;
          for (const line of lines) {
            if (line === "ready") resolve();
            const m = /^committed (\d+)$/.exec(line);
            if (m) {
              progress.commits++;
              progress.applied += Number(m[1]);
              progress.lastCommit = Date.now();
            }
          }
        });
        p.once("exit", (code) => reject(new Error(`child exited with ${code}`)));
      });
      return { p, progress };
    };
    const until = async (cond: () => boolean, ms: number) => {
      for (const end = Date.now() + ms; !cond() && Date.now() < end;) await sleep(10);
      return cond();
    };
    const distinct = 6000;
    const messages = workload(distinct);
    let published = 0;
    let publishing = true;
    const publisher = (async () => {
      for (let i = 0; i < messages.length; i += 150) {
        await Promise.all(messages.slice(i, i + 150).map((m) => bus.js.publish(m.subject, m.data, { msgID: m.msgId })));
        published = i + 150;
        await sleep(15);
      }
    })().finally(() => (publishing = false));
    /** Messages not yet acknowledged, over the streams consumed (all of them until every consumer exists). */
    const outstanding = async () => {
      const infos = await Promise.all(streams.map((s) => bus.jsm.consumers.info(s, consumer).catch(() => null)));
      return infos.every((i) => i !== null) ? infos.reduce((n, i) => n + i!.num_pending + i!.num_ack_pending, 0) : messages.length;
    };
    const counts = { kills: 0, activeKills: 0, selfKills: 0, killedApplied: 0 };
    const appliedByReplica = Array.from({ length: replicas }, () => 0);
    // Each replica slot, in parallel: odd rounds SIGKILL the child from outside at a random moment
    // once it has committed since its start; even rounds let it kill itself right after some
    // commit, before acknowledging. Rounds go on until five outside kills have landed mid-work (a
    // loaded machine may need more rounds for that, never a lower bar), three children killed
    // themselves, and the killed children have done most of the work.
    const slot = async (replica: number) => {
      for (let round = 0; counts.activeKills < 5 || counts.selfKills < 3 || publishing || (await outstanding()) > messages.length * 0.4; round++) {
        if (round > 80) throw new Error(`too many rounds: ${JSON.stringify({ ...counts, published, outstanding: await outstanding() })}`);
        const self = round % 2 === 1 && counts.selfKills < 3;
        const { p, progress } = await startChild(self ? crashingArgs : args);
        const exited = new Promise((r) => p.once("exit", r));
        if (self) {
          await Promise.race([exited, sleep(5000)]);
          if (p.exitCode === null && p.signalCode === null) p.kill("SIGKILL");
          else counts.selfKills++;
        } else {
          const progressed = await until(() => progress.commits > 0, 5_000);
          await sleep(Math.random() * 300);
          // Kill at the first moment after that random delay when the child is active: work is left
          // and it committed within the last second (less than the ack wait), so it is inside its
          // fetch → apply → ack loop, not waiting for a redelivery. Waiting for that moment, rather
          // than judging a fixed moment, keeps the test's premise independent of machine speed.
          let active = false;
          for (const end = Date.now() + 5_000; progressed && !active && Date.now() < end;) {
            active = (await outstanding()) > 0 && Date.now() - progress.lastCommit < 1000;
            if (!active) await sleep(10);
          }
          if (active) counts.activeKills++;
          p.kill("SIGKILL");
          counts.kills++;
        }
        await exited;
        counts.killedApplied += progress.applied;
        appliedByReplica[replica] += progress.applied;
      }
    };
    let survivors: Progress[];
    try {
      await Promise.all(Array.from({ length: replicas }, (_, i) => slot(i)));
      await publisher;
      expect(published).toBeGreaterThanOrEqual(messages.length);
      const last = await Promise.all(Array.from({ length: replicas }, () => startChild()));
      survivors = last.map((l) => l.progress);
      // Wait until everything is delivered and acknowledged.
      await eventually(async () => (await outstanding()) === 0, 60_000, "every message acknowledged");
      for (const { p } of last) {
        const exited = new Promise((r) => p.once("exit", r));
        p.kill("SIGTERM");
        await exited;
      }
    } finally {
      for (const p of procs) p.kill("SIGKILL");
    }
    // The killed children did most of the work; the survivors only the tail.
    const survived = survivors.reduce((n, s) => n + s.applied, 0);
    expect(survived).toBeLessThan(distinct * 0.5);
    expect(counts.killedApplied).toBeGreaterThan(survived);
    // Every replica slot did work: with two partitions the replicas applied them side by side.
    for (const n of appliedByReplica) expect(n).toBeGreaterThan(0);
    expect(counts.selfKills).toBeGreaterThanOrEqual(3);
    // Kills that hit a child in the middle of its work.
    expect(counts.activeKills).toBeGreaterThanOrEqual(5);

    // Ground truth from the streams' own order (a unit's events are all in one stream, in order).
    const events: PipelineEvent[] = [];
    for (const name of streams) {
      const info = await bus.jsm.streams.info(name);
      const oc = await bus.js.consumers.get(name);
      const mine: PipelineEvent[] = [];
      while (mine.length < info.state.messages) {
        const batch = await oc.fetch({ max_messages: 1000, expires: 2000 });
        for await (const m of batch) mine.push(decodeEvent({ data: m.data, seq: m.seq, subject: m.subject }));
      }
      events.push(...mine);
    }
    const expected = reference(events, experiments, new Set(["purchase", "click", "load"]));

    const rows = await database.db
      .selectFrom("variant_daily")
      .select(["experiment_id", "metric_id", "variant"])
      .select((eb) =>
        (["units", "sum", "sum_squares", "count_sum", "count_squares", "sum_count_product", "cov_sum", "cov_squares", "cov_product"] as const).map((c) =>
          eb.fn.sum<number>(c).as(c),
        ),
      )
      .groupBy(["experiment_id", "metric_id", "variant"])
      .execute();
    const actual = new Map(
      rows.map((r) => [
        `${r.experiment_id}/${r.metric_id}/${r.variant}`,
        Object.fromEntries(
          Object.entries(r)
            .filter(([k]) => !["experiment_id", "metric_id", "variant"].includes(k))
            .map(([k, v]) => [k, Number(v)]),
        ),
      ]),
    );
    expect(Object.fromEntries(actual)).toEqual(Object.fromEntries(expected.sums));
    const ex = await database.db
      .selectFrom("exposure_daily")
      .select(["experiment_id", "variant"])
      .select((eb) => [
        eb.fn.sum<number>("units").as("units"),
        eb.fn.sum<number>("conflicting_units").as("cu"),
        eb.fn.sum<number>("conflicting_exposures").as("ce"),
      ])
      .groupBy(["experiment_id", "variant"])
      .execute();
    expect(
      Object.fromEntries(
        ex.map((r) => [`${r.experiment_id}/${r.variant}`, { units: Number(r.units), conflictingUnits: Number(r.cu), conflictingExposures: Number(r.ce) }]),
      ),
    ).toEqual(Object.fromEntries(expected.exposure));
    // Every distinct event id recorded exactly once; the late re-publishes were skipped.
    const { rows: processed } = await sql<{ n: string }>`select count(*) as n from processed_events`.execute(database.db);
    expect(Number(processed[0].n)).toBe(new Set(events.map((e) => e.id)).size);
    // The shuffled times put events on both sides of exposures.
    expect([...expected.sums.values()].some((s) => s.cov_sum > 0 && s.sum > 0)).toBe(true);
    expect([...expected.exposure.values()].some((x) => x.conflictingUnits > 0)).toBe(true);
  }, 400_000);
});
