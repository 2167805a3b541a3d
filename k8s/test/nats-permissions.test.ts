/**
 * The NATS users of k8s/infra/nats/helm-values.yaml, on a real nats-server: each service's
 * allow-list admits exactly the calls that service makes (through lib/bus/bus.ts, as the services
 * do with VANE_JETSTREAM_MANAGED=external) and refuses what belongs to another.
 */
import { type ChildProcess, spawn } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { AckPolicy } from "@nats-io/jetstream";
import { Kvm } from "@nats-io/kv";
import { connect } from "@nats-io/transport-node";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { parse } from "yaml";
import { type Bus, connectBus, ensureKv, ensureStream, publishEvent } from "#lib/bus/bus.ts";
import { findNatsServer, freePort } from "#dev/local-infra.ts";
import { eventsStream } from "#lib/bus/streams.ts";
import { eventually } from "#test/support/harness.ts";
import { pino } from "pino";
import { createChangeFeed } from "../../services/flags/changes/feed.ts";
import { k8sPath } from "../src/render.ts";

interface NatsUser {
  user: string;
  password: string;
  permissions?: unknown;
}
const values = parse(readFileSync(k8sPath("infra/nats/helm-values.yaml"), "utf8")) as { config: { merge: { authorization: { users: NatsUser[] } } } };
const users = values.config.merge.authorization.users;
const password = "test0password";

const dir = mkdtempSync(join(tmpdir(), "vane-nats-perm-"));
let server: ChildProcess | undefined;
let url = "";
const buses: Bus[] = [];
const bus = async (user: string) => {
  const b = await connectBus({ servers: url.replace("nats://", `nats://${user}:${password}@`), name: user, jetStream: "external" });
  buses.push(b);
  return b;
};
/** A refused call: the server answers with a permissions violation, or the request finds nobody. */
const refused = (p: Promise<unknown>) => expect(p).rejects.toThrow(/permission|timeout|no responders|503/i);
const payload = new TextEncoder().encode("x");

beforeAll(async () => {
  const binary = await findNatsServer();
  if (!binary) throw new Error("nats-server is needed (apt-get install nats-server)");
  const port = await freePort();
  url = `nats://127.0.0.1:${port}`;
  const config = {
    host: "127.0.0.1",
    port,
    jetstream: { store_dir: join(dir, "js") },
    authorization: { users: users.map((u) => ({ ...u, password })) },
  };
  writeFileSync(join(dir, "nats.conf"), JSON.stringify(config, null, 1));
  server = spawn(binary, ["-c", join(dir, "nats.conf")], { stdio: ["ignore", "pipe", "pipe"] });
  let output = "";
  server.stderr!.on("data", (c: Buffer) => void (output += c.toString()));
  await new Promise<void>((resolve, reject) => {
    const t = setTimeout(() => reject(new Error(`nats-server did not start:\n${output}`)), 10_000);
    server!.stderr!.on("data", () => {
      if (output.includes("Server is ready")) {
        clearTimeout(t);
        resolve();
      }
    });
    server!.once("exit", () => reject(new Error(`nats-server exited:\n${output}`)));
  });
  // NACK's part, with its full rights: the assets of k8s/infra/nats/jetstream.yaml.
  const nack = await connectBus({ servers: url.replace("nats://", `nats://nack:${password}@`), name: "nack" });
  buses.push(nack);
  await ensureStream(nack.jsm, eventsStream());
  await ensureStream(nack.jsm, { name: "VANE_DOMAIN", subjects: ["vane.domain.>"] });
  await ensureKv(nack.kvm, { bucket: "vane_snapshots", history: 5 });
}, 30_000);

afterAll(async () => {
  for (const b of buses) await b.drain();
  server?.kill("SIGTERM");
  rmSync(dir, { recursive: true, force: true });
});

describe("NATS users (helm-values.yaml)", () => {
  it("are the four services that use NATS and NACK: identity has none", async () => {
    expect(users.map((u) => u.user).sort()).toEqual(["analytics", "collector", "evaluator", "flags", "nack"]);
    for (const u of users.filter((x) => x.user !== "nack")) {
      const p = u.permissions as { publish: Record<string, unknown>; subscribe: Record<string, unknown> };
      // Allow-lists, never deny-lists: a new subject is refused until granted.
      expect(Object.keys(p.publish), u.user).toEqual(["allow"]);
      expect(Object.keys(p.subscribe), u.user).toEqual(["allow"]);
    }
    await expect(connect({ servers: url.replace("nats://", `nats://identity:${password}@`), reconnect: false })).rejects.toThrow(/auth/i);
  });

  it("flags: verifies its stream and bucket, writes snapshots, publishes domain events", async () => {
    const b = await bus("flags");
    await ensureStream(b.jsm, { name: "VANE_DOMAIN", subjects: ["vane.domain.>"], manage: false });
    const kv = await ensureKv(b.kvm, { bucket: "vane_snapshots", history: 5, manage: false });
    await kv.put("env-1", payload);
    expect((await kv.get("env-1"))?.string()).toBe("x");
    const ack = await publishEvent(b.js, "vane.domain.flags.changed", payload, { msgId: "d1", expectStream: "VANE_DOMAIN" });
    expect(ack.stream).toBe("VANE_DOMAIN");
    // WatchChanges' feed: an ordered consumer reading its own domain events back.
    const feed = createChangeFeed({ stream: "VANE_DOMAIN", subjectPrefix: "vane.domain", logger: pino({ level: "silent" }) });
    feed.attach(b);
    await eventually(() => feed.ready && feed.position >= ack.seq, 10_000, "the change feed read the stream");
    await feed.stop();
    await refused(publishEvent(b.js, "vane.events.track", payload, { msgId: "f1", timeoutMs: 1000 }));
    await refused(b.jsm.streams.update("VANE_DOMAIN", { max_age: 1 }));
  }, 30_000);

  it("evaluator: watches the snapshots, publishes exposures, cannot write snapshots", async () => {
    const b = await bus("evaluator");
    const kv = await new Kvm(b.js).open("vane_snapshots");
    const watch = await kv.watch();
    for await (const e of watch) {
      expect(e.key).toBe("env-1");
      break;
    }
    watch.stop();
    // A chunk at the revision a manifest names.
    const latest = (await kv.get("env-1"))!;
    expect((await kv.get("env-1", { revision: latest.revision }))?.string()).toBe("x");
    await ensureStream(b.jsm, { ...eventsStream(), manage: false });
    expect((await publishEvent(b.js, "vane.events.exposure", payload, { msgId: "e1", expectStream: "VANE_EVENTS" })).stream).toBe("VANE_EVENTS");
    await refused(kv.put("env-1", payload, { timeout: 1000 } as never));
    await refused(publishEvent(b.js, "vane.domain.flags.changed", payload, { msgId: "e2", timeoutMs: 1000 }));
  }, 30_000);

  it("collector: publishes tracked events, cannot read snapshots", async () => {
    const b = await bus("collector");
    await ensureStream(b.jsm, { ...eventsStream(), manage: false });
    expect((await publishEvent(b.js, "vane.events.track", payload, { msgId: "c1", expectStream: "VANE_EVENTS" })).stream).toBe("VANE_EVENTS");
    await refused(ensureKv(b.kvm, { bucket: "vane_snapshots", manage: false }));
  }, 30_000);

  it("analytics: runs its durable consumer on VANE_EVENTS and acknowledges, nothing else", async () => {
    const b = await bus("analytics");
    await ensureStream(b.jsm, { ...eventsStream(), manage: false });
    await b.jsm.consumers.add("VANE_EVENTS", { durable_name: "analytics", ack_policy: AckPolicy.Explicit });
    const consumer = await b.js.consumers.get("VANE_EVENTS", "analytics");
    const seen: string[] = [];
    for await (const m of await consumer.fetch({ max_messages: 2, expires: 2000 })) {
      seen.push(m.subject);
      await m.ackAck();
    }
    expect(seen.sort()).toEqual(["vane.events.exposure", "vane.events.track"]);
    expect((await consumer.info()).num_ack_pending).toBe(0);
    // The pipeline reads a missing sequence of a batch straight from the stream.
    expect((await b.jsm.streams.getMessage("VANE_EVENTS", { seq: 1 }))?.seq).toBe(1);
    await refused(b.jsm.streams.getMessage("VANE_DOMAIN", { seq: 1 }));
    await refused(b.jsm.consumers.add("VANE_EVENTS", { durable_name: "other", ack_policy: AckPolicy.Explicit }));
    await refused(publishEvent(b.js, "vane.events.track", payload, { msgId: "a1", timeoutMs: 1000 }));
  }, 30_000);
});
