/**
 * Replicas share the partitions: each claims a fair share, one of them drains the unpartitioned
 * stream (events published before an upgrade), and a replica that stops hands its partitions to
 * the others. (Crashes while events flow: exactly-once.test.ts.)
 */
import { randomUUID } from "node:crypto";
import { create, toBinary } from "@bufbuild/protobuf";
import { timestampNow } from "@bufbuild/protobuf/wkt";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { EventEnvelopeSchema } from "#gen/vane/events/v1/events_pb.js";
import { type Bus, connectBus, ensureStream } from "#lib/bus/bus.ts";
import { eventSubject } from "#lib/bus/events.ts";
import { eventsLayout } from "#lib/bus/partitions.ts";
import { eventsSubjectPrefix } from "#lib/bus/streams.ts";
import { createDatabase, type Database } from "#lib/data/db.ts";
import { migrateToLatest } from "#lib/data/migrations.ts";
import { createTestLogger, deleteStreams, dropSchema, eventually, testDatabaseUrl, testNatsUrl, uniqueName } from "#test/support/harness.ts";
import { migrations } from "../migrations/index.ts";
import { type PartitionedPipeline, startPartitionedPipeline } from "../pipeline/partitions.ts";
import type { AnalyticsDatabase } from "../schema.ts";

describe("pipeline: partitions claimed by replicas", () => {
  const schema = uniqueName("analytics_parts");
  const layout = eventsLayout(uniqueName("EVENTS_PT").toUpperCase(), 2);
  const partitionNames = layout.partitionStreams.map((s) => s.name);
  const consumerName = uniqueName("analytics");
  const env = randomUUID();
  const project = randomUUID();
  const logger = createTestLogger();
  const databases: Database<AnalyticsDatabase>[] = [];
  const replicas: PartitionedPipeline[] = [];
  let bus: Bus;
  beforeAll(async () => {
    for (let i = 0; i < 2; i++) databases.push(await createDatabase<AnalyticsDatabase>({ url: testDatabaseUrl, schema, logger }));
    await migrateToLatest(databases[0].db, migrations, { schema, logger });
    bus = await connectBus({ servers: testNatsUrl, name: "partitions-test", logger });
    for (const spec of [layout.legacy, ...layout.partitionStreams]) await ensureStream(bus.jsm, spec);
  });
  afterAll(async () => {
    for (const r of replicas) await r.stop();
    for (const d of databases) await d.destroy();
    await dropSchema(testDatabaseUrl, schema);
    await deleteStreams(bus.nc, [layout.legacy.name, ...partitionNames]);
    await bus.drain();
  });

  let sent = 0;
  /** Publishes `n` events of distinct units, to their partitions or (legacy) to the unpartitioned stream. */
  const publish = async (n: number, legacy = false) => {
    for (let i = 0; i < n; i++) {
      const id = randomUUID();
      const unitKey = `u${sent++}`;
      const data = toBinary(
        EventEnvelopeSchema,
        create(EventEnvelopeSchema, {
          eventId: id,
          environmentId: env,
          projectId: project,
          receiveTime: timestampNow(),
          payload: { case: "track", value: { eventId: id, name: "click", unitKey } },
        }),
      );
      const subject = legacy ? eventSubject(eventsSubjectPrefix(layout.legacy), env, "track") : layout.route(env, unitKey, "track").subject;
      await bus.js.publish(subject, data, { msgID: id });
    }
  };
  const applied = async () =>
    Number(
      (
        await databases[0].db
          .selectFrom("processed_events")
          .select((eb) => eb.fn.countAll<string>().as("n"))
          .executeTakeFirstOrThrow()
      ).n,
    );
  const start = async (i: number) =>
    startPartitionedPipeline({ db: databases[i].db, bus, stream: layout.legacy.name, partitions: 2, consumerName, claimIntervalMs: 100, logger });
  const partitionsOf = (r: PartitionedPipeline) => r.held().filter((s) => partitionNames.includes(s));

  it("spreads partitions over replicas, drains the unpartitioned stream, and hands partitions over", async () => {
    await publish(30, true);
    await publish(100);
    const publishedTo = new Set(Array.from({ length: 100 }, (_, i) => layout.route(env, `u${30 + i}`, "track").stream));
    expect(publishedTo).toEqual(new Set(partitionNames));

    replicas.push(await start(0));
    await eventually(async () => (await applied()) === 130, 20_000, "all 130 events applied by the one replica");
    expect(replicas[0].held().sort()).toEqual([layout.legacy.name, ...partitionNames].sort());

    replicas.push(await start(1));
    await eventually(() => partitionsOf(replicas[0]).length === 1 && partitionsOf(replicas[1]).length === 1, 20_000, "one partition each");
    expect(new Set([...partitionsOf(replicas[0]), ...partitionsOf(replicas[1])])).toEqual(new Set(partitionNames));
    await publish(100);
    await eventually(async () => (await applied()) === 230, 20_000, "the next 100 applied");
    // The second replica applied events of its own partition (its count moves after the commit and the acks).
    await eventually(() => replicas[1].stats().processed > 0, 20_000, "the second replica's own events applied");

    // The first replica stops: the second takes both partitions (and the unpartitioned stream).
    await replicas.shift()!.stop();
    await eventually(() => partitionsOf(replicas[0]).length === 2 && replicas[0].held().includes(layout.legacy.name), 20_000, "the partitions taken over");
    await publish(50, true);
    await publish(100);
    await eventually(async () => (await applied()) === 380, 20_000, "everything applied");
    const positions = await databases[0].db.selectFrom("consumer_positions").select(["consumer", "stream_seq"]).execute();
    const seqs = Object.fromEntries(positions.map((p) => [p.consumer, Number(p.stream_seq)]));
    expect(seqs[consumerName]).toBe(80);
    const partitionInfos = await Promise.all(partitionNames.map((s) => bus.jsm.streams.info(s)));
    for (const [i, name] of partitionNames.entries()) expect(seqs[`${consumerName}:${name}`]).toBe(partitionInfos[i].state.last_seq);
  });
});
