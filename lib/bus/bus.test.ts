import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { context, SpanKind, trace } from "@opentelemetry/api";
import { InMemorySpanExporter, SimpleSpanProcessor } from "@opentelemetry/sdk-trace-node";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { connectBus, ensureKv, ensureStream, publishEvent, splitCredentials, type Bus, type BusStatus } from "#lib/bus/bus.ts";
import { withConsumerSpan } from "#lib/bus/bus-trace.ts";
import { findNatsServer, freePort, startNatsServer } from "#dev/local-infra.ts";
import { startTelemetry } from "#lib/process/telemetry.ts";
import { deleteStreams, testNatsUrl, uniqueName } from "#test/support/harness.ts";

const spans = new InMemorySpanExporter();
const telemetry = startTelemetry({ serviceName: "bus-test", spanProcessors: [new SimpleSpanProcessor(spans)] });

const stream = uniqueName("BUSTEST").toUpperCase();
const subject = `vanetest.${stream.toLowerCase()}`;
const bucket = uniqueName("bustest");
let bus: Bus;

beforeAll(async () => {
  bus = await connectBus({ servers: testNatsUrl, name: "bus-test" });
});

afterAll(async () => {
  await deleteStreams(bus.nc, [stream, `KV_${bucket}`]);
  await bus.drain();
  await telemetry.shutdown();
});

describe("connectBus", () => {
  it("connects and reports its status", () => {
    expect(bus.status()).toBe("connected");
  });

  it("waits for a NATS that is down at start, and follows reconnects", async () => {
    const binary = await findNatsServer();
    if (!binary) return; // needs a nats-server binary to play the outage
    const dir = await mkdtemp(join(tmpdir(), "vane-bus-"));
    const port = await freePort();
    const url = `nats://127.0.0.1:${port}`;
    const pending = connectBus({ servers: url, name: "bus-test-outage" });
    let server = await startNatsServer({ binary, port, storeDir: dir });
    const late = await pending;
    try {
      expect(late.status()).toBe("connected");
      const seen: BusStatus[] = [];
      const until = (want: BusStatus) =>
        (async () => {
          for await (const s of late.nc.status()) {
            if (s.type === "disconnect" && want === "reconnecting") break;
            if (s.type === "reconnect" && want === "connected") break;
          }
          seen.push(late.status());
        })();
      const down = until("reconnecting");
      await server.stop();
      await down;
      const up = until("connected");
      server = await startNatsServer({ binary, port, storeDir: dir });
      await up;
      expect(seen).toEqual(["reconnecting", "connected"]);
    } finally {
      await late.drain();
      expect(late.status()).toBe("closed");
      await server.stop();
      await rm(dir, { recursive: true, force: true });
    }
  }, 60_000);
});

describe("ensureStream", () => {
  it("creates once when several processes ensure it at once, then is a no-op", async () => {
    const spec = { name: stream, subjects: [`${subject}.>`], maxAgeMs: 3_600_000, duplicateWindowMs: 60_000 };
    const other = await connectBus({ servers: testNatsUrl, name: "bus-test-2" });
    try {
      const results = await Promise.all([ensureStream(bus.jsm, spec), ensureStream(other.jsm, spec), ensureStream(bus.jsm, spec)]);
      expect(results.filter((r) => r.action === "created").length).toBeGreaterThanOrEqual(1);
      expect(results.every((r) => r.action !== "updated")).toBe(true);
    } finally {
      await other.drain();
    }
    const again = await ensureStream(bus.jsm, spec);
    expect(again.action).toBe("unchanged");
    expect(again.info.config.duplicate_window).toBe(60_000 * 1_000_000);
  });

  it("updates changed settings and refuses a storage change", async () => {
    const spec = { name: stream, subjects: [`${subject}.>`, `${subject}x.>`], maxAgeMs: 7_200_000, duplicateWindowMs: 60_000 };
    const updated = await ensureStream(bus.jsm, spec);
    expect(updated.action).toBe("updated");
    expect(updated.info.config.subjects).toEqual(spec.subjects);
    expect(updated.info.config.max_age).toBe(7_200_000 * 1_000_000);
    await expect(ensureStream(bus.jsm, { ...spec, storage: "memory" })).rejects.toThrow(/storage/);
  });
});

describe("ensureKv", () => {
  it("creates a bucket concurrently and updates its history", async () => {
    const kvs = await Promise.all([1, 2, 3].map(() => ensureKv(bus.kvm, { bucket, history: 1 })));
    await kvs[0].put("k", new Uint8Array([1]));
    expect([...((await kvs[1].get("k"))?.value ?? [])]).toEqual([1]);
    const kv = await ensureKv(bus.kvm, { bucket, history: 5, maxValueSize: 1024 });
    const status = await kv.status();
    expect(status.history).toBe(5);
    expect(status.maxValueSize).toBe(1024);
  });
});

describe("externally managed streams and buckets (manage: false)", () => {
  const ext = uniqueName("BUSEXT").toUpperCase();
  const extBucket = uniqueName("busext");
  afterAll(async () => {
    await deleteStreams(bus.nc, [ext, `KV_${extBucket}`]);
  });

  it("a bus says whether services manage JetStream", async () => {
    expect(bus.manageJetStream).toBe(true);
    const external = await connectBus({ servers: testNatsUrl, name: "bus-test-ext", jetStream: "external" });
    try {
      expect(external.manageJetStream).toBe(false);
    } finally {
      await external.drain();
    }
  });

  it("fails with a clear message when the stream does not exist, and creates nothing", async () => {
    await expect(ensureStream(bus.jsm, { name: ext, subjects: [`vanetest.${ext.toLowerCase()}.>`], manage: false })).rejects.toThrow(
      /does not exist.*VANE_JETSTREAM_MANAGED=external/,
    );
    await expect(bus.jsm.streams.info(ext)).rejects.toThrow();
  });

  it("verifies an operator's stream without changing its replicas, age, dedupe window or limits", async () => {
    const subjects = [`vanetest.${ext.toLowerCase()}.>`];
    // The operator's settings differ from the service's declaration on purpose.
    await bus.jsm.streams.add({ name: ext, subjects, max_age: 3_600_000 * 1_000_000, duplicate_window: 30_000 * 1_000_000, max_msgs: 1000 });
    const before = (await bus.jsm.streams.info(ext)).config;
    const declared = { name: ext, subjects, maxAgeMs: 60_000, duplicateWindowMs: 10_000, maxMsgs: 5, description: "service's own", manage: false };
    const result = await ensureStream(bus.jsm, declared);
    expect(result.action).toBe("verified");
    const after = (await bus.jsm.streams.info(ext)).config;
    expect(after).toEqual(before);
    await expect(ensureStream(bus.jsm, { ...declared, subjects: [...subjects, "vanetest.other.>"] })).rejects.toThrow(/vanetest\.other/);
    await expect(ensureStream(bus.jsm, { ...declared, storage: "memory" })).rejects.toThrow(/storage/);
    // The managed default would have reconciled it: proof that manage: false is what held it still.
    expect((await ensureStream(bus.jsm, { ...declared, manage: true })).action).toBe("updated");
  });

  it("verifies a bucket exists with enough history, and opens it unchanged", async () => {
    await expect(ensureKv(bus.kvm, { bucket: extBucket, manage: false })).rejects.toThrow(/KV bucket .* does not exist/);
    await bus.kvm.create(extBucket, { history: 3, description: "operator's" });
    const kv = await ensureKv(bus.kvm, { bucket: extBucket, history: 2, maxValueSize: 1024, description: "service's", manage: false });
    await kv.put("k", new Uint8Array([7]));
    const status = await kv.status();
    expect(status.history).toBe(3);
    expect(status.maxValueSize).toBe(-1);
    await expect(ensureKv(bus.kvm, { bucket: extBucket, history: 5, manage: false })).rejects.toThrow(/history/);
  });
});

describe("publishEvent", () => {
  it("publishes protobuf bytes with trace headers, de-duplicated by msgId", async () => {
    spans.reset();
    const root = trace.getTracer("test").startSpan("rpc");
    const payload = new Uint8Array([8, 1, 18, 2, 104, 105]);
    const [first, second] = await context.with(trace.setSpan(context.active(), root), async () => [
      await publishEvent(bus.js, `${subject}.created`, payload, { msgId: "evt-1", expectStream: stream }),
      await publishEvent(bus.js, `${subject}.created`, payload, { msgId: "evt-1" }),
    ]);
    root.end();
    expect(first.duplicate).toBe(false);
    expect(second.duplicate).toBe(true);
    expect(second.seq).toBe(first.seq);

    const stored = await bus.jsm.streams.getMessage(stream, { seq: first.seq });
    expect(stored?.data).toEqual(payload);
    expect(stored?.header.get("Nats-Msg-Id")).toBe("evt-1");

    // The consumer's span continues the producer's trace.
    await withConsumerSpan({ subject: stored!.subject, headers: stored!.header, data: stored!.data }, "test", () => undefined);
    const producer = spans.getFinishedSpans().find((s) => s.kind === SpanKind.PRODUCER)!;
    const consumer = spans.getFinishedSpans().find((s) => s.kind === SpanKind.CONSUMER)!;
    expect(producer.name).toBe(`send ${subject}.created`);
    expect(producer.parentSpanContext?.spanId).toBe(root.spanContext().spanId);
    expect(consumer.spanContext().traceId).toBe(root.spanContext().traceId);
    expect(consumer.parentSpanContext?.spanId).toBe(producer.spanContext().spanId);
  });

  it("fails, with an error span, when no stream captures the subject", async () => {
    spans.reset();
    await expect(publishEvent(bus.js, `vanetest.nostream.${stream.toLowerCase()}`, new Uint8Array([1]), { msgId: "x", timeoutMs: 2_000 })).rejects.toThrow();
    expect(spans.getFinishedSpans()[0]?.status.code).toBe(2);
  });
});

describe("splitCredentials", () => {
  it("moves user:password out of server URLs, which nats.js ignores there", () => {
    expect(splitCredentials(["nats://flags:p%40ss:w@nats:4222", "nats://nats-1:4222"])).toEqual({
      servers: ["nats://nats:4222", "nats://nats-1:4222"],
      user: "flags",
      pass: "p@ss:w",
    });
    expect(splitCredentials(["nats://127.0.0.1:4222"])).toEqual({ servers: ["nats://127.0.0.1:4222"], user: undefined, pass: undefined });
    expect(splitCredentials(["evaluator@nats:4222"])).toEqual({ servers: ["nats:4222"], user: "evaluator", pass: "" });
  });
});
