/**
 * Everything the flags API accepts can be published and evaluated, and one tenant's stuck message
 * never stops another's: limits at the edge, the commit-time guard, per-key relay order, parking
 * and RepublishSnapshot.
 */
import { spawn } from "node:child_process";
import { fileURLToPath } from "node:url";
import { fromJson } from "@bufbuild/protobuf";
import { ValueSchema } from "@bufbuild/protobuf/wkt";
import { Code } from "@connectrpc/connect";
import { sql } from "kysely";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { FlagService } from "#gen/vane/flags/v1/flag_service_pb.js";
import { FlagType } from "#gen/vane/flags/v1/flags_pb.js";
import { compileFlagSet } from "#engine";
import { eventually, failure, testDatabaseUrl } from "#test/support/harness.ts";
import { versionFromSnapshot } from "../../evaluator/snapshots/store.ts";
import { MAX_JSON_DEPTH } from "../limits.ts";
import { type FlagsHarness, startFlags, type Tenant } from "./harness.ts";
import { decodeStoredSnapshot } from "#lib/bus/snapshots.ts";

const root = fileURLToPath(new URL("../../..", import.meta.url));

const variants = [
  { key: "on", value: fromJson(ValueSchema, true) },
  { key: "off", value: fromJson(ValueSchema, false) },
];

/** JSON Logic `{"if": [{"and": [… {"==": [{"var": "plan"}, "pro"]} …]}, "on", "off"]}` nested at least `depth` levels of objects and lists (exactly, where the shape allows). */
function nestedLogic(depth: number): unknown {
  let cond: unknown = { "==": [{ var: "plan" }, "pro"] }; // 3 levels; each "and" adds 2, the "if" 2
  for (let d = 5; d + 2 <= depth; d += 2) cond = { and: [cond] };
  return { if: [cond, "on", "off"] };
}
const depthOf = (v: unknown): number => (v !== null && typeof v === "object" ? 1 + Math.max(0, ...Object.values(v as object).map(depthOf)) : 0);

const flagdFile = (targeting: unknown, extra: Record<string, unknown> = {}) =>
  JSON.stringify({ flags: { deep: { state: "ENABLED", variants: { on: true, off: false }, defaultVariant: "off", targeting, ...extra } } });

describe("limits: accepted ⇒ publishable ⇒ evaluable", () => {
  let h: FlagsHarness;
  let a: Tenant;
  let b: Tenant;
  beforeAll(async () => {
    h = await startFlags({ maxSnapshotBytes: 64 << 10, relayMaxAttempts: 3 });
    a = await h.seedTenant();
    b = await h.seedTenant();
  });
  afterAll(() => h?.close());

  const snapshotIn = async (environmentId: string) => {
    const entry = await h.flags.snapshots.get(environmentId);
    return entry && entry.value.length > 0 ? await decodeStoredSnapshot(h.flags.snapshots, entry.value) : undefined;
  };

  it("accepts JSON Logic up to the depth limit and publishes a snapshot the evaluator decodes and compiles", async () => {
    const logic = nestedLogic(MAX_JSON_DEPTH);
    expect(depthOf(logic)).toBe(MAX_JSON_DEPTH - 1);
    const res = await h.client(FlagService, a.ownerToken).importFlagd({ environmentId: a.environmentId, flagdJson: flagdFile(logic) });
    const snapshot = await eventually(async () => {
      const s = await snapshotIn(a.environmentId);
      return s && s.version >= res.configVersion ? s : undefined;
    }, 10_000);
    const set = compileFlagSet(versionFromSnapshot(snapshot).evaluationDefinition!, { extensions: true });
    expect(set.evaluate("deep", { plan: "pro" }).variant).toBe("on");
  });

  it("refuses deeper JSON Logic, at every depth, with INVALID_ARGUMENT naming the limit", async () => {
    const f = h.client(FlagService, a.ownerToken);
    const deepText = (levels: number) => flagdFile(null).replace('"targeting":null', `"targeting":${"[".repeat(levels)}${"]".repeat(levels)}`);
    for (const flagdJson of [
      flagdFile(nestedLogic(MAX_JSON_DEPTH + 2)),
      flagdFile(nestedLogic(40)),
      flagdFile(nestedLogic(60)),
      deepText(5_000),
      deepText(100_000),
    ]) {
      const err = await failure(f.importFlagd({ environmentId: a.environmentId, flagdJson }));
      expect(err.code, `a file of ${flagdJson.length} characters`).toBe(Code.InvalidArgument);
      expect(err.rawMessage).toMatch(new RegExp(`${MAX_JSON_DEPTH}`));
    }
    // The same through the structured API.
    await f.createFlag({ projectId: a.projectId, key: "structured", name: "s", type: FlagType.BOOLEAN, variants });
    const deep = await failure(
      f.updateFlagEnvironment({
        environmentId: a.environmentId,
        flagKey: "structured",
        enabled: true,
        rules: [
          {
            conditions: [{ kind: { case: "jsonLogic", value: fromJson(ValueSchema, (nestedLogic(40) as { if: unknown[] }).if[0] as never) } }],
            outcome: { kind: { case: "variant", value: "on" } },
          },
        ],
      }),
    );
    expect(deep.code).toBe(Code.InvalidArgument);
    expect(deep.rawMessage).toMatch(/rules\[0\]\.conditions\[0\]\.json_logic: nests more than 32 levels/);
    // A variant value too.
    let value: unknown = { leaf: 1 };
    for (let i = 0; i < 40; i++) value = { nested: value };
    const objectFlag = await failure(
      f.createFlag({
        projectId: a.projectId,
        key: "obj",
        name: "o",
        type: FlagType.OBJECT,
        variants: [{ key: "v", value: fromJson(ValueSchema, value as never) }],
      }),
    );
    expect(objectFlag.code).toBe(Code.InvalidArgument);
    expect(objectFlag.rawMessage).toMatch(/variants\[0\]\.value/);
  });

  it("refuses at commit a change whose snapshot would exceed VANE_SNAPSHOT_MAX_BYTES, naming its size and the limit, and writes nothing", async () => {
    const f = h.client(FlagService, b.ownerToken);
    const big = JSON.stringify({ flags: { huge: { state: "ENABLED", variants: { a: "x".repeat(40_000), b: "y".repeat(40_000) }, defaultVariant: "a" } } });
    const err = await failure(f.importFlagd({ environmentId: b.environmentId, flagdJson: big }));
    expect(err.code).toBe(Code.InvalidArgument);
    // The limit is on the encoded snapshot, not its compressed form (these values compress to almost nothing).
    expect(err.rawMessage).toMatch(/configuration \d{5,} bytes, over the limit of 65536 bytes \(VANE_SNAPSHOT_MAX_BYTES/);
    await expect(f.getFlag({ projectId: b.projectId, key: "huge" })).rejects.toMatchObject({ code: Code.NotFound });
  });

  it("keeps publishing other environments while one environment's message fails; parks it; RepublishSnapshot recovers", async () => {
    const fa = h.client(FlagService, a.ownerToken);
    const fb = h.client(FlagService, b.ownerToken);
    // A message for a's environment that can never be published (over NATS's max_payload), at
    // the head of the outbox, as a corrupted or oversized snapshot would be.
    await sql`insert into outbox (kind, target, ordering_key, payload, msg_id, headers)
      values ('kv', ${a.environmentId}, ${a.environmentId}, ${Buffer.alloc(2 << 20, 1)}, '999999', '{}')`.execute(h.flags.database.db);
    // b's edits reach the bucket while a's message is retried and then parked.
    await fb.createFlag({ projectId: b.projectId, key: "fresh", name: "f", type: FlagType.BOOLEAN, variants });
    const edit = await fb.updateFlagEnvironment({ environmentId: b.environmentId, flagKey: "fresh", enabled: true, defaultVariant: "on" });
    await eventually(async () => ((await snapshotIn(b.environmentId))?.version ?? 0n) >= edit.configVersion, 10_000, "b's snapshot");
    await eventually(() => h.flags.relay.parked() >= 1, 20_000, "the poisoned message parked");
    const { rows } = await sql<{ attempts: number; last_error: string }>`select attempts, last_error from outbox where msg_id = '999999'`.execute(
      h.flags.database.db,
    );
    expect(rows[0].attempts).toBe(3);
    expect(rows[0].last_error).toMatch(/payload|size|exceed/i);

    // The operator republishes a's environment: a new version, the parked message superseded.
    const republished = await fa.republishSnapshot({ environmentId: a.environmentId, reason: "parked message" });
    expect(republished.supersededParked).toBe(1);
    expect(republished.auditEntryId).toBeGreaterThan(0n);
    await eventually(async () => ((await snapshotIn(a.environmentId))?.version ?? 0n) === republished.configVersion, 10_000, "a's republished snapshot");
    await eventually(() => h.flags.relay.parked() === 0, 10_000, "no parked message left");
    const audit = await fa.listAuditEntries({ projectId: a.projectId, environmentId: a.environmentId });
    expect(audit.entries[0]).toMatchObject({ action: "environment.republish", reason: "parked message" });
    // Viewers and editors may not republish; bad ids are refused.
    const editor = (await h.member(a, "editor")).token;
    expect((await failure(h.client(FlagService, editor).republishSnapshot({ environmentId: a.environmentId }))).code).toBe(Code.PermissionDenied);
    expect((await failure(fa.republishSnapshot({ environmentId: "nope" }))).code).toBe(Code.InvalidArgument);
  });

  it("overwrites a stored value it cannot read instead of trusting a decode of it", async () => {
    const fa = h.client(FlagService, a.ownerToken);
    // Garbage in the bucket (a manual write, a corrupted value): the next change replaces it.
    await h.flags.snapshots.put(a.environmentId, new Uint8Array([0xff, 0xff, 0xff, 0xff, 0x0f]));
    const edit = await fa.updateFlagEnvironment({ environmentId: a.environmentId, flagKey: "deep", expectedVersion: 1n, enabled: false });
    await eventually(
      async () => {
        const entry = await h.flags.snapshots.get(a.environmentId);
        try {
          return entry ? (await decodeStoredSnapshot(h.flags.snapshots, entry.value)).version === edit.configVersion : false;
        } catch {
          return false;
        }
      },
      10_000,
      "the corrupt value replaced",
    );
  });

  it("npm run republish: the operator command republishes from the database, audited as the operator", async () => {
    const before = await h.client(FlagService, a.ownerToken).exportFlagd({ environmentId: a.environmentId });
    const run = (args: string[]) =>
      new Promise<{ code: number | null; out: string }>((resolve) => {
        const child = spawn(process.execPath, ["--import", "tsx", "scripts/republish.ts", ...args], {
          cwd: root,
          env: { PATH: process.env.PATH, VANE_DATABASE_URL: testDatabaseUrl, VANE_SCHEMA_PREFIX: h.schemaPrefix, VANE_DOMAIN_SUBJECT_PREFIX: h.subjectPrefix },
        });
        let out = "";
        child.stdout.on("data", (d: Buffer) => (out += d));
        child.stderr.on("data", (d: Buffer) => (out += d));
        child.on("exit", (code) => resolve({ code, out }));
      });
    const ok = await run([a.environmentId, "after", "an", "incident"]);
    expect(ok.code, ok.out).toBe(0);
    const version = BigInt(/config version (\d+)/.exec(ok.out)![1]);
    expect(version).toBe(before.configVersion + 1n);
    await eventually(async () => ((await snapshotIn(a.environmentId))?.version ?? 0n) === version, 10_000, "the republished snapshot");
    const audit = await h.client(FlagService, a.ownerToken).listAuditEntries({ projectId: a.projectId, environmentId: a.environmentId });
    expect(audit.entries[0]).toMatchObject({ action: "environment.republish", reason: "after an incident" });
    expect(audit.entries[0].actor).toMatch(/^operator:/);
    // Bad input: usage (exit 2); an environment flags has never configured (exit 1).
    expect((await run(["not-a-uuid"])).code).toBe(2);
    const unknown = await run(["00000000-0000-4000-8000-00000000abcd"]);
    expect(unknown.code).toBe(1);
    expect(unknown.out).toMatch(/no configuration/);
  }, 60_000);
});
