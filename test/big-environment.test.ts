/**
 * An environment of 10,000 flags end to end: its flags written in one statement (ImportFlagd
 * writes flag by flag and takes longer than a CI test should: docs/benchmarks.md), its snapshot
 * committed by RepublishSnapshot and written in chunks (the harness lowers the value size so the chunked path is the one taken;
 * NATS's own max_payload does the same for larger environments), loaded by a real evaluator
 * and served by remote evaluation, OFREP and flagd sync; a change to one flag reaches it too.
 */
import { fromJson } from "@bufbuild/protobuf";
import { ValueSchema } from "@bufbuild/protobuf/wkt";
import { sql } from "kysely";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { EvaluationService } from "#gen/vane/evaluation/v1/evaluation_service_pb.js";
import { FlagService } from "#gen/vane/flags/v1/flag_service_pb.js";
import { parseEnvelope } from "#lib/bus/snapshots.ts";
import { eventually } from "#test/support/harness.ts";
import { createTestTokens, type EvaluatorHarness, startEvaluator } from "../services/evaluator/test/harness.ts";
import { type FlagsHarness, startFlags, type Tenant } from "../services/flags/test/harness.ts";

const FLAGS = 10_000;
const CHUNK = 16 << 10;

/** Boolean flags flag-0 … flag-<n-1>, odd ones on, written straight to the database. */
async function seedFlags(n: number): Promise<void> {
  await sql`insert into flags (id, organization_id, project_id, key, name, description, tags, owner, type, variants, client_visible, archived, version)
    select gen_random_uuid(), ${t.orgId}, ${t.projectId}, 'flag-' || i, 'flag-' || i, '', '[]', '', 'boolean',
      '[{"key":"on","value":true},{"key":"off","value":false}]', false, false, 1
    from generate_series(0, ${n - 1}) as i`.execute(h.flags.database.db);
  await sql`insert into flag_environments (flag_id, environment_id, organization_id, project_id, enabled, default_variant, rules, version)
    select id, ${t.environmentId}, organization_id, project_id, true, case when substr(key, 6)::int % 2 = 1 then 'on' else 'off' end, '[]', 1
    from flags where project_id = ${t.projectId}`.execute(h.flags.database.db);
}

let h: FlagsHarness;
let ev: EvaluatorHarness;
let t: Tenant;
let token: string;
beforeAll(async () => {
  h = await startFlags({ snapshotValueBytes: CHUNK });
  t = await h.seedTenant();
  const tokens = await createTestTokens();
  token = await tokens.sign({ sub: "k1", org: t.orgId, prj: t.projectId, env: t.environmentId, kind: "server" });
  // The flags service's bucket, as in production (fixtures: false: the bucket is not the evaluator harness's to create).
  ev = await startEvaluator({ bucket: h.bucket, fixtures: false, verifier: tokens.verifier, env: { VANE_FLAGD_AUTH: "key" } });
}, 60_000);
afterAll(async () => {
  await ev?.close();
  await h?.close();
});

const post = async (url: string, body: unknown) => {
  const res = await fetch(url, {
    method: "POST",
    headers: { "content-type": "application/json", authorization: `Bearer ${token}` },
    body: JSON.stringify(body),
  });
  expect(res.status, await res.clone().text()).toBe(200);
  return (await res.json()) as Record<string, unknown>;
};

describe(`an environment of ${FLAGS.toLocaleString("en")} flags`, () => {
  it("is committed, written in chunks, and served by remote evaluation, OFREP and flagd sync", async () => {
    await seedFlags(FLAGS);
    const flags = h.client(FlagService, t.ownerToken);
    const imported = await flags.republishSnapshot({ environmentId: t.environmentId, reason: "10,000 flags" }, { timeoutMs: 60_000 });

    const stored = await eventually(
      async () => {
        const entry = await h.flags.snapshots.get(t.environmentId);
        const envelope = entry ? parseEnvelope(entry.value) : undefined;
        return envelope && envelope.version >= imported.configVersion ? envelope : undefined;
      },
      30_000,
      "the snapshot in the bucket",
    );
    expect(stored.body.case).toBe("chunks");
    const chunks = stored.body.case === "chunks" ? stored.body.value.chunks : [];
    expect(chunks.length).toBeGreaterThan(1);
    expect(chunks.every((c) => c.size <= CHUNK)).toBe(true);
    expect(Number(stored.snapshotSize)).toBeGreaterThan(chunks.reduce((n, c) => n + c.size, 0)); // compressed

    await eventually(() => (ev.module.store.get(t.environmentId)?.version ?? 0) >= Number(imported.configVersion), 60_000, "the evaluator loads it");
    expect(Object.keys(ev.module.store.get(t.environmentId)!.definition.flags)).toHaveLength(FLAGS);

    // Remote evaluation (gRPC).
    const c = ev.client(EvaluationService, token);
    expect((await c.evaluate({ flagKey: "flag-1" })).evaluation?.value?.kind).toEqual({ case: "boolValue", value: true });
    expect((await c.evaluate({ flagKey: `flag-${FLAGS - 2}` })).evaluation?.value?.kind).toEqual({ case: "boolValue", value: false });
    // OFREP.
    const ofrep = await post(`${ev.baseUrl}/ofrep/v1/evaluate/flags/flag-3`, { context: { targetingKey: "u" } });
    expect(ofrep).toMatchObject({ key: "flag-3", value: true, variant: "on" });
    // flagd sync: the whole set.
    const sync = await post(`http://127.0.0.1:${ev.flagd.syncPort}/flagd.sync.v1.FlagSyncService/FetchAllFlags`, {});
    expect(Object.keys(JSON.parse(sync.flagConfiguration as string).flags)).toHaveLength(FLAGS);
  });

  it("delivers a change to one flag (a rule): the chunks are rewritten and read at their new revisions", async () => {
    const flags = h.client(FlagService, t.ownerToken);
    const { environments } = await flags.getFlag({ projectId: t.projectId, key: "flag-2" });
    const expectedVersion = environments.find((e) => e.environmentId === t.environmentId)!.version;
    const edit = await flags.updateFlagEnvironment(
      {
        environmentId: t.environmentId,
        flagKey: "flag-2",
        expectedVersion,
        enabled: true,
        defaultVariant: "off",
        rules: [
          {
            conditions: [{ kind: { case: "jsonLogic", value: fromJson(ValueSchema, { "==": [{ var: "email" }, "vip@example.com"] }) } }],
            outcome: { kind: { case: "variant", value: "on" } },
          },
        ],
      },
      { timeoutMs: 60_000 },
    );
    await eventually(() => (ev.module.store.get(t.environmentId)?.version ?? 0) >= Number(edit.configVersion), 30_000, "the new version loaded");
    const c = ev.client(EvaluationService, token);
    expect((await c.evaluate({ flagKey: "flag-2", context: { targetingKey: "u", email: "vip@example.com" } })).evaluation?.variant).toBe("on");
    expect((await c.evaluate({ flagKey: "flag-2", context: { targetingKey: "u" } })).evaluation?.variant).toBe("off");
    expect(Object.keys(ev.module.store.get(t.environmentId)!.definition.flags)).toHaveLength(FLAGS);
  });
});
