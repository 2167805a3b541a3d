/**
 * The pipeline alone in a process, for the crash test: `node --import tsx pipeline-child.ts '<json options>'`.
 * Prints "ready" once consuming, and "committed <events>" after each batch commits (before its
 * acknowledgement), so the test can kill it while it is demonstrably working. Test code only.
 */
import { connectBus } from "#lib/bus/bus.ts";
import { createDatabase } from "#lib/data/db.ts";
import { createTestLogger } from "#test/support/harness.ts";
import { startPartitionedPipeline } from "../pipeline/partitions.ts";
import type { AnalyticsDatabase } from "../schema.ts";

const o = JSON.parse(process.argv[2]) as {
  databaseUrl: string;
  schema: string;
  natsUrl: string;
  stream: string;
  partitions: number;
  consumer: string;
  batchSize: number;
  ackWaitMs: number;
  crashAfterCommit: number;
};
const logger = createTestLogger();
const database = await createDatabase<AnalyticsDatabase>({ url: o.databaseUrl, schema: o.schema, poolSize: 2 + o.partitions * 2, logger });
const bus = await connectBus({ servers: o.natsUrl, name: "pipeline-child", logger });
const pipeline = await startPartitionedPipeline({
  db: database.db,
  bus,
  stream: o.stream,
  partitions: o.partitions,
  claimIntervalMs: 200,
  consumerName: o.consumer,
  batchSize: o.batchSize,
  ackWaitMs: o.ackWaitMs,
  fetchExpiresMs: 1000,
  logger,
  afterCommit: (result) => {
    // The worst moment to die: committed, not acknowledged — the whole batch comes back.
    if (Math.random() < o.crashAfterCommit) process.kill(process.pid, "SIGKILL");
    process.stdout.write(`committed ${result.applied}\n`);
  },
});
process.stdout.write("ready\n");
process.on("SIGTERM", () => {
  void (async () => {
    await pipeline.stop();
    await bus.drain();
    await database.destroy();
    process.exit(0);
  })();
});
