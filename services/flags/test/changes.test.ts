/**
 * ChangeService.WatchChanges through real Connect clients (Connect-Web's fetch transport on
 * HTTP/1.1, connect-node on HTTP/2): each committed change of the project arrives with its audit
 * entry and actor, fed by the domain events on NATS; other projects' changes never arrive;
 * heartbeats keep an idle stream alive; a stream resumes from the last sequence it saw, or is
 * told to resynchronise when that is older than the server's window.
 */
import { create, fromJson } from "@bufbuild/protobuf";
import { ValueSchema } from "@bufbuild/protobuf/wkt";
import { type Client, Code, ConnectError, createClient, type Interceptor, type Transport } from "@connectrpc/connect";
import { createConnectTransport as createNodeTransport } from "@connectrpc/connect-node";
import { createConnectTransport as createWebTransport } from "@connectrpc/connect-web";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type Change, ChangeKind, ChangeService, type WatchChangesRequest, type WatchChangesResponse } from "#gen/vane/flags/v1/change_service_pb.js";
import { FlagService } from "#gen/vane/flags/v1/flag_service_pb.js";
import { FlagType, VariantSchema } from "#gen/vane/flags/v1/flags_pb.js";
import { SegmentService } from "#gen/vane/flags/v1/segment_service_pb.js";
import { AuthService } from "#gen/vane/identity/v1/auth_service_pb.js";
import { ApiKeyKind } from "#gen/vane/identity/v1/identity_pb.js";
import { IdentityService } from "#gen/vane/identity/v1/identity_service_pb.js";
import { eventually, failure } from "#test/support/harness.ts";
import { type FlagsHarness, startFlags, type Tenant } from "./harness.ts";

const variants = [
  create(VariantSchema, { key: "on", value: fromJson(ValueSchema, true) }),
  create(VariantSchema, { key: "off", value: fromJson(ValueSchema, false) }),
];
const CAPACITY = 40;

type Init = Omit<Partial<WatchChangesRequest>, "$typeName" | "$unknown">;

/** An open stream: what it received, and a way to wait for more. */
function watch(client: Client<typeof ChangeService>, req: Init) {
  const ac = new AbortController();
  const it = client.watchChanges(req, { signal: ac.signal })[Symbol.asyncIterator]();
  const received: WatchChangesResponse[] = [];
  const changes = () => received.flatMap((r) => r.changes);
  return {
    received,
    changes,
    /** Reads messages until `done` holds for what was received. */
    async until(done: (r: WatchChangesResponse[]) => boolean) {
      while (!done(received)) {
        const next = await it.next();
        if (next.done) throw new Error("the stream ended");
        received.push(next.value);
      }
    },
    close: () => {
      ac.abort();
      void it.return?.().catch(() => undefined);
    },
  };
}

const summary = (c: Change) => ({ kind: ChangeKind[c.kind], flagKey: c.flagKey, segmentKey: c.segmentKey, environmentId: c.environmentId, action: c.action });

describe("WatchChanges", () => {
  let h: FlagsHarness;
  let t: Tenant;
  let other: Tenant;
  let viewer: { userId: string; token: string };
  const transports: { name: string; transport: (token: string) => Transport }[] = [];
  const auth =
    (token: string): Interceptor =>
    (next) =>
    (req) => {
      req.header.set("authorization", `Bearer ${token}`);
      return next(req);
    };

  beforeAll(async () => {
    h = await startFlags({ changes: { capacity: CAPACITY, heartbeatMs: 300 } });
    t = await h.seedTenant();
    other = await h.seedTenant();
    viewer = await h.member(t, "viewer");
    const baseUrl = `http://127.0.0.1:${h.running.port}`;
    transports.push(
      { name: "Connect-Web (fetch, HTTP/1.1)", transport: (token) => createWebTransport({ baseUrl, interceptors: [auth(token)] }) },
      { name: "connect-node (HTTP/2)", transport: (token) => createNodeTransport({ baseUrl, httpVersion: "2", interceptors: [auth(token)] }) },
    );
    await eventually(() => h.flags.changeFeed.ready, 10_000, "the change feed caught up");
  });
  afterAll(async () => {
    // fetch (Node's undici) keeps a connection to the server after the Connect-Web streams end,
    // and the server's close waits for it (about a minute): close fetch's connections first.
    const dispatcher = (globalThis as Record<symbol, { close?: () => Promise<void> } | undefined>)[Symbol.for("undici.globalDispatcher.1")];
    await dispatcher?.close?.();
    await h?.close();
  });

  it("streams each committed change with its audit entry and actor, over HTTP/1.1 and HTTP/2", async () => {
    const flags = h.client(FlagService, t.ownerToken);
    const segments = h.client(SegmentService, t.ownerToken);
    const streams = transports.map(({ transport }) => watch(createClient(ChangeService, transport(viewer.token)), { projectId: t.projectId }));
    for (const s of streams) await s.until((r) => r.length >= 1);
    for (const s of streams) expect(s.received[0]).toMatchObject({ heartbeat: true, changes: [] });

    await flags.createFlag({ projectId: t.projectId, key: "live", name: "Live", type: FlagType.BOOLEAN, variants });
    const { configVersion } = await flags.updateFlagEnvironment({ environmentId: t.environmentId, flagKey: "live", enabled: true, defaultVariant: "on" });
    await flags.archiveFlag({ projectId: t.projectId, key: "live", expectedVersion: 1n });
    await flags.unarchiveFlag({ projectId: t.projectId, key: "live", expectedVersion: 2n });
    await segments.createSegment({ projectId: t.projectId, key: "vips", name: "VIPs", includedKeys: ["a"] });
    await segments.updateSegment({ projectId: t.projectId, key: "vips", expectedVersion: 1n, name: "VIPs", includedKeys: ["a", "b"] });
    await segments.deleteSegment({ projectId: t.projectId, key: "vips", expectedVersion: 2n });
    // Another organization's changes, committed meanwhile, never reach these streams.
    await h.client(FlagService, other.ownerToken).createFlag({ projectId: other.projectId, key: "elsewhere", name: "x", type: FlagType.BOOLEAN, variants });

    const audit = (await flags.listAuditEntries({ projectId: t.projectId, pageSize: 200 })).entries;
    const lastAudit = audit[0].id;
    for (const s of streams) {
      await s.until(
        () => s.changes().some((c) => c.kind === ChangeKind.SEGMENT_DELETED) && s.changes().filter((c) => c.auditEntryId === lastAudit).length === 3,
      );
      const changes = s.changes();
      const envs = [t.environmentId, t.stagingId].sort();
      const both = (action: string) => envs.map((environmentId) => ({ kind: "CONFIG_CHANGED", flagKey: "", segmentKey: "", environmentId, action }));
      expect(changes.map(summary)).toEqual([
        { kind: "FLAG_CREATED", flagKey: "live", segmentKey: "", environmentId: "", action: "flag.create" },
        ...both("flag.create"),
        { kind: "CONFIG_CHANGED", flagKey: "", segmentKey: "", environmentId: t.environmentId, action: "flag.environment.update" },
        { kind: "FLAG_ARCHIVED", flagKey: "live", segmentKey: "", environmentId: "", action: "flag.archive" },
        ...both("flag.archive"),
        { kind: "FLAG_UNARCHIVED", flagKey: "live", segmentKey: "", environmentId: "", action: "flag.unarchive" },
        ...both("flag.unarchive"),
        { kind: "SEGMENT_CREATED", flagKey: "", segmentKey: "vips", environmentId: "", action: "segment.create" },
        ...both("segment.create"),
        { kind: "SEGMENT_UPDATED", flagKey: "", segmentKey: "vips", environmentId: "", action: "segment.update" },
        ...both("segment.update"),
        { kind: "SEGMENT_DELETED", flagKey: "", segmentKey: "vips", environmentId: "", action: "segment.delete" },
        ...both("segment.delete"),
      ]);
      // Every change names its audit entry and who made it; sequences only grow.
      for (const c of changes) {
        expect(audit.map((a) => a.id)).toContain(c.auditEntryId);
        expect({ actor: c.actor, actorKind: c.actorKind }).toEqual({ actor: t.ownerUserId, actorKind: "user" });
        expect(c.commitTime).toBeDefined();
      }
      expect(changes.map((c) => c.sequence)).toEqual([...changes.map((c) => c.sequence)].sort((a, b) => (a < b ? -1 : 1)));
      const targeting = changes.find((c) => c.action === "flag.environment.update")!;
      expect(targeting).toMatchObject({ configVersion, changedFlagKeys: ["live"] });
      expect(changes.find((c) => c.kind === ChangeKind.FLAG_UNARCHIVED)?.version).toBe(3n);
      expect(changes.find((c) => c.kind === ChangeKind.SEGMENT_UPDATED)?.version).toBe(2n);
      s.close();
    }
  });

  it("sends heartbeats on an idle stream, carrying the position to resume from", async () => {
    const s = watch(h.client(ChangeService, viewer.token), { projectId: t.projectId });
    await s.until((r) => r.length >= 3);
    expect(s.received.every((r) => r.heartbeat && r.changes.length === 0)).toBe(true);
    expect(s.received.at(-1)!.sequence).toBe(BigInt(h.flags.changeFeed.position));
    s.close();
  });

  it("resumes from the last sequence seen with exactly what was missed", async () => {
    const flags = h.client(FlagService, t.ownerToken);
    const first = watch(h.client(ChangeService, viewer.token), { projectId: t.projectId });
    await first.until((r) => r.length >= 1);
    const seen = first.received[0].sequence;
    first.close();
    await flags.createFlag({ projectId: t.projectId, key: "missed", name: "Missed", type: FlagType.BOOLEAN, variants });
    await h.client(FlagService, other.ownerToken).createFlag({ projectId: other.projectId, key: "other-missed", name: "x", type: FlagType.BOOLEAN, variants });
    await eventually(() => h.flags.changeFeed.since(other.projectId, Number(seen)).changes.length === 3, 10_000, "the changes reached the feed");
    const resumed = watch(h.client(ChangeService, viewer.token), { projectId: t.projectId, resumeAfterSequence: seen });
    await resumed.until((r) => r.length >= 1);
    expect(resumed.received[0].resyncRequired).toBe(false);
    expect(resumed.received[0].changes.map(summary)).toEqual([
      { kind: "FLAG_CREATED", flagKey: "missed", segmentKey: "", environmentId: "", action: "flag.create" },
      ...[t.environmentId, t.stagingId]
        .sort()
        .map((environmentId) => ({ kind: "CONFIG_CHANGED", flagKey: "", segmentKey: "", environmentId, action: "flag.create" })),
    ]);
    // The position after the replay: at least its last change (other projects' events may follow).
    expect(resumed.received[0].sequence >= resumed.received[0].changes.at(-1)!.sequence).toBe(true);
    // Live changes follow the replay, once each.
    await flags.updateFlagEnvironment({ environmentId: t.stagingId, flagKey: "missed", enabled: true });
    await resumed.until(() => resumed.changes().length === 4);
    expect(resumed.changes()[3]).toMatchObject({ kind: ChangeKind.CONFIG_CHANGED, environmentId: t.stagingId, action: "flag.environment.update" });
    resumed.close();
  });

  it("asks for a resync when the sequence is older than the window it holds", async () => {
    const flags = h.client(FlagService, t.ownerToken);
    for (let i = 0; flags && i < Math.ceil(CAPACITY / 3) + 1; i++) {
      await flags.createFlag({ projectId: t.projectId, key: `bulk-${i}`, name: "Bulk", type: FlagType.BOOLEAN, variants });
    }
    await eventually(() => !h.flags.changeFeed.since(t.projectId, 1).complete, 10_000, "the window moved on");
    // The feed may still be taking in the last events: the answer names the position it had then.
    const before = BigInt(h.flags.changeFeed.position);
    const s = watch(h.client(ChangeService, viewer.token), { projectId: t.projectId, resumeAfterSequence: 1n });
    await s.until((r) => r.length >= 1);
    expect(s.received[0]).toMatchObject({ resyncRequired: true, changes: [] });
    expect(s.received[0].sequence).toBeGreaterThanOrEqual(before);
    expect(s.received[0].sequence).toBeLessThanOrEqual(BigInt(h.flags.changeFeed.position));
    s.close();
  });

  it("refuses bad input, other tenants' projects and keys that may not read flags", async () => {
    const read = async (client: Client<typeof ChangeService>, req: Init) => {
      for await (const _ of client.watchChanges(req)) break;
    };
    const outsider = (await h.member(other, "viewer")).token;
    for (const projectId of [t.projectId, "00000000-0000-4000-8000-000000000000"]) {
      expect((await failure(read(h.client(ChangeService, outsider), { projectId }))).code).toBe(Code.NotFound);
    }
    expect((await failure(read(h.client(ChangeService, viewer.token), { projectId: "nope" }))).code).toBe(Code.InvalidArgument);
    const negative = await failure(read(h.client(ChangeService, viewer.token), { projectId: t.projectId, resumeAfterSequence: -1n }));
    expect(negative.code).toBe(Code.InvalidArgument);
    expect(negative.rawMessage).toMatch(/resume_after_sequence/);
    const { secret } = await h.client(IdentityService, t.ownerToken).createApiKey({ environmentId: t.environmentId, kind: ApiKeyKind.SERVER, name: "s" });
    const serverToken = (await h.client(AuthService).exchangeApiKey({ apiKey: secret })).accessToken;
    expect((await failure(read(h.client(ChangeService, serverToken), { projectId: t.projectId }))).code).toBe(Code.PermissionDenied);
    expect(ConnectError.from(await failure(read(h.client(ChangeService), { projectId: t.projectId }))).code).toBe(Code.Unauthenticated);
  });
});
