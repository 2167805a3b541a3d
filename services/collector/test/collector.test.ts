import { randomUUID } from "node:crypto";
import { fromBinary } from "@bufbuild/protobuf";
import { Code, ConnectError, createClient } from "@connectrpc/connect";
import { createConnectTransport, createGrpcTransport } from "@connectrpc/connect-node";
import { AckPolicy, DeliverPolicy, jetstream } from "@nats-io/jetstream";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { EventEnvelopeSchema } from "#gen/vane/events/v1/events_pb.js";
import { EventService } from "#gen/vane/events/v1/event_service_pb.js";
import { type Bus, connectBus } from "#lib/bus/bus.ts";
import { createEnvReader } from "#lib/process/config.ts";
import { readCommonConfig } from "#lib/process/service-config.ts";
import { type RunningModules, startModules } from "#lib/process/service-module.ts";
import { createTestLogger, deleteStreams, testNatsUrl, uniqueName } from "#test/support/harness.ts";
import { createTestTokens, type TestTokens } from "#test/support/tokens.ts";
import { createCollectorModule } from "../module.ts";

describe("collector", () => {
  const stream = uniqueName("EVENTS").toUpperCase();
  let bus: Bus;
  let running: RunningModules;
  let tokens: TestTokens;
  let baseUrl: string;
  const env = { org: randomUUID(), prj: randomUUID(), env: randomUUID() };
  let serverToken: string;

  beforeAll(async () => {
    bus = await connectBus({ servers: testNatsUrl, name: "collector-test" });
    tokens = await createTestTokens();
    const reader = createEnvReader({ VANE_PORT: "0", VANE_HOST: "127.0.0.1", VANE_DRAIN_DELAY: "0s" });
    const module = await createCollectorModule({ bus, streamName: stream, rateLimit: { perSecond: 100, burst: 1500 }, logger: createTestLogger() });
    running = await startModules({ config: readCommonConfig(reader), logger: createTestLogger(), modules: [module], verifier: tokens.verifier });
    baseUrl = `http://127.0.0.1:${running.port}`;
    serverToken = await tokens.sign({ sub: randomUUID(), ...env, kind: "server" });
  });
  afterAll(async () => {
    await running?.stop();
    if (bus) {
      await deleteStreams(bus.nc, [stream]);
      await bus.drain();
    }
  });

  const client = (token?: string, protocol: "grpc" | "connect" = "grpc") => {
    const headers = token ? { authorization: `Bearer ${token}` } : undefined;
    const transport =
      protocol === "grpc"
        ? createGrpcTransport({ baseUrl, interceptors: [(next) => (req) => (headers && req.header.set("authorization", headers.authorization), next(req))] })
        : createConnectTransport({
            baseUrl,
            httpVersion: "1.1",
            interceptors: [(next) => (req) => (headers && req.header.set("authorization", headers.authorization), next(req))],
          });
    return createClient(EventService, transport);
  };

  async function stored(): Promise<ReturnType<typeof fromBinary<typeof EventEnvelopeSchema>>[]> {
    const js = jetstream(bus.nc);
    const name = uniqueName("reader");
    await bus.jsm.consumers.add(stream, { durable_name: name, ack_policy: AckPolicy.None, deliver_policy: DeliverPolicy.All });
    const consumer = await js.consumers.get(stream, name);
    const info = await bus.jsm.streams.info(stream);
    const out = [];
    if (info.state.messages > 0) {
      const batch = await consumer.fetch({ max_messages: info.state.messages, expires: 2000 });
      for await (const m of batch) {
        out.push(fromBinary(EventEnvelopeSchema, m.data));
        if (out.length === info.state.messages) break;
      }
    }
    await bus.jsm.consumers.delete(stream, name);
    return out;
  }

  it("stores valid events, reports invalid ones by index and field, and counts retries once", async () => {
    const id = randomUUID();
    const res = await client(serverToken).track({
      events: [
        { eventId: id, name: "checkout", unitKey: "user-1", value: 42.5, properties: { plan: "pro" } },
        { name: "bad name!", unitKey: "user-2" },
        { name: "signup", unitKey: "" },
        { name: "page_view", unitKey: "user-3" },
      ],
    });
    expect(res.accepted).toBe(2);
    expect(res.acceptedEventIds[0]).toBe(id);
    expect(res.acceptedEventIds[1]).toMatch(/^[0-9a-f-]{36}$/);
    expect(res.rejected.map((r) => [r.index, r.field])).toEqual([
      [1, "name"],
      [2, "unit_key"],
    ]);
    // A retry of the same event (same id) is acknowledged but stored once.
    await client(serverToken).track({ events: [{ eventId: id, name: "checkout", unitKey: "user-1", value: 42.5 }] });
    const events = await stored();
    expect(events.filter((e) => e.eventId === id)).toHaveLength(1);
    const checkout = events.find((e) => e.eventId === id)!;
    expect(checkout).toMatchObject({ organizationId: env.org, projectId: env.prj, environmentId: env.env });
    expect(checkout.payload.case).toBe("track");
    expect(checkout.payload.value).toMatchObject({ name: "checkout", unitKey: "user-1", value: 42.5, properties: { plan: "pro" } });
  });

  it("rejects the second use of an event id within one batch, naming the first", async () => {
    const id = randomUUID();
    const res = await client(serverToken).track({
      events: [
        { eventId: id, name: "checkout", unitKey: "user-1" },
        { name: "page_view", unitKey: "user-1" },
        { eventId: id, name: "checkout", unitKey: "user-1", value: 3 },
      ],
    });
    expect([res.accepted, res.acceptedEventIds.filter((x) => x === id).length]).toEqual([2, 1]);
    expect(res.rejected.map((r) => [r.index, r.field, r.message])).toEqual([[2, "event_id", "the same event id as event 0 of this batch"]]);
  });

  it("dedupes per environment: another tenant's identical event id is stored too", async () => {
    const id = `evt-${randomUUID().slice(0, 8)}`;
    const other = { org: randomUUID(), prj: randomUUID(), env: randomUUID() };
    const otherToken = await tokens.sign({ sub: randomUUID(), ...other, kind: "server" });
    await client(serverToken).track({ events: [{ eventId: id, name: "checkout", unitKey: "a" }] });
    await client(otherToken).track({ events: [{ eventId: id, name: "checkout", unitKey: "b" }] });
    await client(otherToken).track({ events: [{ eventId: id, name: "checkout", unitKey: "b" }] }); // a retry
    const same = (await stored()).filter((e) => e.eventId === id);
    expect(same.map((e) => e.environmentId).sort()).toEqual([env.env, other.env].sort());
  });

  it("accepts browser batches over Connect JSON with a client key", async () => {
    const token = await tokens.sign({ sub: randomUUID(), ...env, kind: "client" });
    const res = await fetch(`${baseUrl}/vane.events.v1.EventService/Track`, {
      method: "POST",
      headers: { "content-type": "application/json", authorization: `Bearer ${token}` },
      body: JSON.stringify({ events: [{ name: "click", unitKey: "anon-9", properties: { button: "buy" } }] }),
    });
    expect(res.status).toBe(200);
    expect(await res.json()).toMatchObject({ accepted: 1 });
  });

  it("refuses properties nested deeper than analytics can decode, even over Connect JSON", async () => {
    // 60 levels: Connect JSON decodes them, the binary envelope analytics reads would not.
    let properties: unknown = "deep";
    for (let i = 0; i < 60; i++) properties = { a: properties };
    let eight: unknown = "ok";
    for (let i = 0; i < 8; i++) eight = { a: eight };
    const res = await fetch(`${baseUrl}/vane.events.v1.EventService/Track`, {
      method: "POST",
      headers: { "content-type": "application/json", authorization: `Bearer ${serverToken}` },
      body: JSON.stringify({
        events: [
          { name: "deep", unitKey: "u", properties },
          { name: "eight", unitKey: "u", properties: eight },
        ],
      }),
    });
    expect(res.status).toBe(200);
    const body = (await res.json()) as { accepted: number; rejected: { index?: number; field: string; message: string }[] };
    expect(body.accepted).toBe(1);
    expect(body.rejected).toEqual([{ field: "properties", message: "properties nest at most 8 levels deep" }]);
  });

  it("rejects empty and oversized batches, bad properties, and callers without an environment key", async () => {
    const codeOf = (p: Promise<unknown>) =>
      p.then(
        () => "OK",
        (e: unknown) => Code[ConnectError.from(e).code],
      );
    expect(await codeOf(client(serverToken).track({ events: [] }))).toBe("InvalidArgument");
    const many = Array.from({ length: 1001 }, (_, i) => ({ name: "e", unitKey: `u${i}` }));
    expect(await codeOf(client(serverToken).track({ events: many }))).toBe("InvalidArgument");
    const props = Object.fromEntries(Array.from({ length: 51 }, (_, i) => [`k${i}`, i]));
    const res = await client(serverToken).track({ events: [{ name: "e", unitKey: "u", properties: props }] });
    expect(res.rejected[0]).toMatchObject({ index: 0, field: "properties" });
    expect(await codeOf(client().track({ events: [{ name: "e", unitKey: "u" }] }))).toBe("Unauthenticated");
    const person = await tokens.sign({ sub: randomUUID(), org: env.org, role: "owner", kind: "user" });
    expect(await codeOf(client(person).track({ events: [{ name: "e", unitKey: "u" }] }))).toBe("PermissionDenied");
  });

  it("answers RESOURCE_EXHAUSTED with a retry hint past the rate limit", async () => {
    const token = await tokens.sign({ sub: randomUUID(), ...env, kind: "server" });
    const batch = Array.from({ length: 1000 }, (_, i) => ({ name: "load", unitKey: `u${i}` }));
    await client(token).track({ events: batch });
    let err: ConnectError | undefined;
    try {
      await client(token).track({ events: batch });
    } catch (e) {
      err = ConnectError.from(e);
    }
    expect(err?.code).toBe(Code.ResourceExhausted);
    expect(Number(err?.metadata.get("retry-after"))).toBeGreaterThan(0);
  });
});
