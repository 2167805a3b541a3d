/**
 * The pipeline never waits forever on the server's ack floor: a message held somewhere the server
 * will not redeliver from for a long time (here: another client of the same durable consumer,
 * under a ten-minute ack wait; after a crash, a floor the server lost track of) is read from the
 * stream by sequence and applied in order, once, and everything after it goes on.
 */
import { randomUUID } from "node:crypto";
import { create, toBinary } from "@bufbuild/protobuf";
import { timestampNow } from "@bufbuild/protobuf/wkt";
import { AckPolicy, DeliverPolicy } from "@nats-io/jetstream";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { EventEnvelopeSchema } from "#gen/vane/events/v1/events_pb.js";
import { type Bus, connectBus, ensureStream } from "#lib/bus/bus.ts";
import { eventsStream, eventsSubjectPrefix } from "#lib/bus/streams.ts";
import { createDatabase, type Database } from "#lib/data/db.ts";
import { migrateToLatest } from "#lib/data/migrations.ts";
import { createTestLogger, deleteStreams, dropSchema, eventually, testDatabaseUrl, testNatsUrl, uniqueName } from "#test/support/harness.ts";
import { migrations } from "../migrations/index.ts";
import { type Pipeline, startPipeline } from "../pipeline/consumer.ts";
import type { AnalyticsDatabase } from "../schema.ts";

describe("pipeline: a floor that does not move", () => {
  const schema = uniqueName("analytics_floor");
  const spec = eventsStream(uniqueName("EVENTS_FL").toUpperCase());
  const consumerName = uniqueName("analytics");
  const env = randomUUID();
  const project = randomUUID();
  let database: Database<AnalyticsDatabase>;
  let bus: Bus;
  let pipeline: Pipeline | undefined;
  beforeAll(async () => {
    const logger = createTestLogger();
    database = await createDatabase<AnalyticsDatabase>({ url: testDatabaseUrl, schema, logger });
    await migrateToLatest(database.db, migrations, { schema, logger });
    bus = await connectBus({ servers: testNatsUrl, name: "floor-test", logger });
    await ensureStream(bus.jsm, spec);
  });
  afterAll(async () => {
    await pipeline?.stop();
    await database?.destroy();
    await dropSchema(testDatabaseUrl, schema);
    await deleteStreams(bus.nc, [spec.name]);
    await bus.drain();
  });

  const publish = async (n: number) => {
    for (let i = 0; i < n; i++) {
      const id = randomUUID();
      const data = toBinary(
        EventEnvelopeSchema,
        create(EventEnvelopeSchema, {
          eventId: id,
          environmentId: env,
          projectId: project,
          receiveTime: timestampNow(),
          payload: { case: "track", value: { eventId: id, name: "click", unitKey: `u${i}` } },
        }),
      );
      await bus.js.publish(`${eventsSubjectPrefix(spec)}.${env}.track`, data, { msgID: id });
    }
  };
  const applied = async () =>
    Number(
      (
        await database.db
          .selectFrom("processed_events")
          .select((eb) => eb.fn.countAll<string>().as("n"))
          .where("environment_id", "=", env)
          .executeTakeFirstOrThrow()
      ).n,
    );

  it("reads the held message from the stream and applies everything, in order, exactly once", async () => {
    await publish(20);
    // Another client of the durable consumer takes the first message and never acknowledges it:
    // the server's ack floor stays at 0 for the ten-minute ack wait.
    await bus.jsm.consumers.add(spec.name, {
      durable_name: consumerName,
      ack_policy: AckPolicy.Explicit,
      deliver_policy: DeliverPolicy.All,
      ack_wait: 600_000_000_000,
      max_ack_pending: 2000,
      max_deliver: -1,
    });
    const held = await (await bus.js.consumers.get(spec.name, consumerName)).next({ expires: 5_000 });
    expect(held?.seq).toBe(1);

    pipeline = await startPipeline({ db: database.db, bus, stream: spec.name, consumerName, ackWaitMs: 600_000, gapWaitMs: 500, logger: createTestLogger() });
    await eventually(async () => (await applied()) === 20, 20_000, "all 20 events applied");
    expect(pipeline.stats().gapFills).toBeGreaterThanOrEqual(1);
    const position = await database.db.selectFrom("consumer_positions").select("stream_seq").where("consumer", "=", consumerName).executeTakeFirstOrThrow();
    expect(Number(position.stream_seq)).toBe(20);

    // More events keep flowing; when the held message finally comes back, it is acknowledged as
    // applied, never applied twice.
    await publish(5);
    await eventually(async () => (await applied()) === 25, 20_000, "the next 5 applied");
    held!.nak();
    await eventually(async () => (await bus.jsm.consumers.info(spec.name, consumerName)).ack_floor.stream_seq === 25, 20_000, "the server's floor caught up");
    expect(await applied()).toBe(25);
  });
});
