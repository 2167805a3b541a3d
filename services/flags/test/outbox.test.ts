/**
 * The outbox under fire: NATS stopped and restarted, the service's Postgres connections killed,
 * and the relay's process replaced during a burst of changes. Every config version must reach the
 * KV bucket, in order, exactly once per version, and every event the stream.
 */
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { create, fromBinary, fromJson } from "@bufbuild/protobuf";
import { ValueSchema } from "@bufbuild/protobuf/wkt";
import { jetstream } from "@nats-io/jetstream";
import { Kvm } from "@nats-io/kv";
import pg from "pg";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ConfigChangedSchema } from "#gen/vane/flags/v1/events_pb.js";
import { FlagService } from "#gen/vane/flags/v1/flag_service_pb.js";
import { FlagType, VariantSchema } from "#gen/vane/flags/v1/flags_pb.js";
import { findNatsServer, freePort, type StartedServer, startNatsServer } from "#dev/local-infra.ts";
import { connectTestNats, createTestLogger, testDatabaseUrl } from "#test/support/harness.ts";
import { createIdentityDirectory } from "#lib/clients/identity-directory.ts";
import { createFlagsModule, type FlagsModule } from "../module.ts";
import { type FlagsHarness, startFlags, type Tenant } from "./harness.ts";
import { decodeStoredSnapshot } from "#lib/bus/snapshots.ts";

const binary = await findNatsServer();
const variants = ["a", "b", "c"].map((k) => create(VariantSchema, { key: k, value: fromJson(ValueSchema, k) }));
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe.skipIf(!binary)("outbox relay", () => {
  let dir: string;
  let port: number;
  let nats: StartedServer;
  let h: FlagsHarness;
  let t: Tenant;
  let replica: FlagsModule | undefined;
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), "vane-flags-nats-"));
    port = await freePort();
    nats = await startNatsServer({ binary: binary!, port, storeDir: dir });
    h = await startFlags({ natsUrl: nats.url });
    t = await h.seedTenant();
  });
  afterAll(async () => {
    await replica?.stop();
    await h?.close();
    await nats?.stop();
    await rm(dir, { recursive: true, force: true });
  });

  it("delivers every version in order through NATS and Postgres outages and a relay restart", async () => {
    const flags = h.client(FlagService, t.ownerToken);
    await flags.createFlag({ projectId: t.projectId, key: "burst", name: "Burst", type: FlagType.STRING, variants });
    // A second replica of the service (same schema): it must wait while the first leads.
    replica = await createFlagsModule({
      databaseUrl: testDatabaseUrl,
      schema: h.flagsSchema,
      nats: { url: nats.url },
      snapshotBucket: h.bucket,
      snapshotHistory: 64,
      domainStream: h.stream,
      domainSubjectPrefix: h.subjectPrefix,
      directory: createIdentityDirectory({ baseUrl: "http://127.0.0.1:1" }),
      migrate: false,
      logger: createTestLogger(),
      relay: { pollIntervalMs: 200, retryMinMs: 50, retryMaxMs: 500 },
    });
    expect([h.flags.relay.isLeader(), replica.relay.isLeader()].filter(Boolean).length).toBeLessThanOrEqual(1);

    const changes = 45;
    let version = 0n;
    for (let i = 0; i < changes; i++) {
      if (i === 8) await nats.stop(); // NATS goes away mid-burst
      if (i === 15) {
        // Every Postgres connection of the service dies (as in a Postgres restart).
        const admin = new pg.Client({ connectionString: testDatabaseUrl });
        await admin.connect();
        await admin.query("select pg_terminate_backend(pid) from pg_stat_activity where application_name = $1 and pid <> pg_backend_pid()", [h.flagsSchema]);
        await admin.end();
      }
      if (i === 22) await h.flags.relay.stop(); // the leading process goes away; the replica takes over
      if (i === 30) {
        // While NATS was away nothing could be published: the changes wait in the outbox.
        expect(replica.relay.isLeader()).toBe(true);
        expect(replica.relay.backlog()).toBeGreaterThan(0);
        nats = await startNatsServer({ binary: binary!, port, storeDir: dir });
      }
      for (let attempt = 0; ; attempt++) {
        try {
          const res = await flags.updateFlagEnvironment({
            environmentId: t.environmentId,
            flagKey: "burst",
            expectedVersion: version,
            enabled: true,
            defaultVariant: variants[i % 3].key,
          });
          version = res.environment!.version;
          break;
        } catch (err) {
          // The request that met a killed connection: retry it (the write did not happen).
          if (attempt > 3) throw err;
          await sleep(100);
        }
      }
    }

    const nc = await connectTestNats(nats.url);
    try {
      const kv = await new Kvm(nc).open(h.bucket);
      const want = 1 + changes; // the flag's creation, then every change
      let seen: bigint[] = [];
      for (let i = 0; i < 300; i++) {
        seen = [];
        for await (const e of await kv.history({ key: t.environmentId })) {
          if (e.operation === "PUT") seen.push((await decodeStoredSnapshot(kv, e.value)).version);
        }
        if (seen.length >= want) break;
        await sleep(100);
      }
      expect(seen).toEqual(Array.from({ length: want }, (_, i) => BigInt(i + 1)));
      const last = await decodeStoredSnapshot(kv, (await kv.get(t.environmentId))!.value);
      expect(last.flags[0].defaultVariant).toBe(variants[(changes - 1) % 3].key);

      // The events: one ConfigChanged per version of the environment, in order, none twice.
      const js = jetstream(nc);
      const consumer = await js.consumers.get(h.stream);
      const versions: bigint[] = [];
      const ids = new Set<string>();
      for (let i = 0; i < 20 && versions.length < want; i++) {
        const batch = await consumer.fetch({ max_messages: 100, expires: 1_000 });
        for await (const m of batch) {
          if (m.subject !== `${h.subjectPrefix}.flags.config_changed`) continue;
          const ev = fromBinary(ConfigChangedSchema, m.data);
          if (ev.environmentId !== t.environmentId) continue;
          expect(ids.has(ev.eventId)).toBe(false);
          ids.add(ev.eventId);
          versions.push(ev.version);
        }
      }
      expect(versions).toEqual(Array.from({ length: want }, (_, i) => BigInt(i + 1)));
      expect(replica.relay.isLeader()).toBe(true);
      expect(replica.relay.backlog()).toBe(0);
    } finally {
      await nc.drain();
    }
  }, 180_000);
});
