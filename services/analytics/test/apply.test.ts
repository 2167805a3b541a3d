/**
 * applyBatch on real Postgres, one batch at a time in the arrival order a test chooses: dedupe per
 * environment, and before/after decided by time when exposures and events arrive out of order.
 */
import { randomUUID } from "node:crypto";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createDatabase, type Database, withTransaction } from "#lib/data/db.ts";
import { migrateToLatest } from "#lib/data/migrations.ts";
import { createTestLogger, dropSchema, testDatabaseUrl, uniqueName } from "#test/support/harness.ts";
import { applyBatch, type PipelineEvent } from "../pipeline/apply.ts";
import { migrations } from "../migrations/index.ts";
import type { AnalyticsDatabase } from "../schema.ts";

describe("applyBatch", () => {
  const schema = uniqueName("analytics_apply");
  let database: Database<AnalyticsDatabase>;
  const project = randomUUID();
  const envA = randomUUID();
  const envB = randomUUID();
  const metric = { id: randomUUID(), key: "purchases", event: "purchase" };
  const experimentA = randomUUID();
  const experimentB = randomUUID();
  let seq = 0;

  beforeAll(async () => {
    const logger = createTestLogger();
    database = await createDatabase<AnalyticsDatabase>({ url: testDatabaseUrl, schema, logger });
    await migrateToLatest(database.db, migrations, { schema, logger });
    const org = randomUUID();
    await database.db
      .insertInto("metrics")
      .values({
        id: metric.id,
        organization_id: org,
        project_id: project,
        key: metric.key,
        name: "Purchases",
        event_name: metric.event,
        kind: "count",
        direction: "increase",
      })
      .execute();
    for (const [id, env] of [
      [experimentA, envA],
      [experimentB, envB],
    ]) {
      await database.db
        .insertInto("experiments")
        .values({
          id,
          organization_id: org,
          project_id: project,
          environment_id: env,
          flag_key: "f",
          key: id,
          name: "x",
          hypothesis: "",
          variants: JSON.stringify([
            { variant: "control", weight: 1 },
            { variant: "treatment", weight: 1 },
          ]),
          control_variant: "control",
          metric_keys: JSON.stringify({ primary: [metric.key], secondary: [], guardrail: [] }),
          metric_ids: JSON.stringify({ [metric.key]: metric.id }),
          layer_key: "",
          layer_share_percent: 0,
          shipped_variant: "",
          status: "running",
          start_time: new Date(),
          bandit: null,
          saved_environment: null,
          version: 1,
        })
        .execute();
    }
  });
  afterAll(async () => {
    await database?.destroy();
    await dropSchema(testDatabaseUrl, schema);
  });

  const exposure = (env: string, experimentId: string, unitKey: string, time: Date, variant = "treatment"): PipelineEvent => ({
    kind: "exposure",
    id: randomUUID(),
    seq: ++seq,
    environmentId: env,
    time,
    experimentId,
    variant,
    unitKey,
  });
  const track = (env: string, unitKey: string, time: Date, id: string = randomUUID()): PipelineEvent => ({
    kind: "track",
    id,
    seq: ++seq,
    environmentId: env,
    projectId: project,
    time,
    name: metric.event,
    unitKey,
    value: 1,
  });
  const apply = (events: PipelineEvent[], skewToleranceMs?: number) => withTransaction(database.db, (trx) => applyBatch(trx, events, { skewToleranceMs }));
  const totals = async (experimentId: string, unitKey: string) =>
    database.db
      .selectFrom("unit_metric_totals")
      .select(["count", "covariate"])
      .where("experiment_id", "=", experimentId)
      .where("unit_key", "=", unitKey)
      .executeTakeFirstOrThrow();
  const sums = async (experimentId: string) =>
    database.db
      .selectFrom("variant_daily")
      .select((eb) => [
        eb.fn.sum<number>("units").as("units"),
        eb.fn.sum<number>("sum").as("sum"),
        eb.fn.sum<number>("cov_sum").as("cov"),
        eb.fn.sum<number>("cov_product").as("covProduct"),
      ])
      .where("experiment_id", "=", experimentId)
      .executeTakeFirstOrThrow();

  it("dedupes per environment: another tenant's identical event id counts, a repeat does not", async () => {
    const t0 = new Date("2026-12-01T10:00:00Z");
    await apply([exposure(envA, experimentA, "dup-a", t0), exposure(envB, experimentB, "dup-b", t0)]);
    const after = new Date(t0.getTime() + 60_000);
    const r1 = await apply([track(envA, "dup-a", after, "evt-1"), track(envB, "dup-b", after, "evt-1")]);
    expect(r1).toMatchObject({ applied: 2, duplicates: 0 });
    const r2 = await apply([track(envA, "dup-a", after, "evt-1"), track(envA, "dup-a", after, "evt-1")]);
    expect(r2).toMatchObject({ applied: 0, duplicates: 2 });
    expect((await totals(experimentA, "dup-a")).count).toBe(1);
    expect((await totals(experimentB, "dup-b")).count).toBe(1);
  });

  it("decides before/after by time, whatever the arrival order", async () => {
    const t0 = new Date("2026-12-01T12:00:00Z");
    const at = (s: number) => new Date(t0.getTime() + s * 1000);
    // Unit "late": two purchases after its exposure and one an hour before arrive first; the
    // exposure arrives in a later batch (an evaluator that could not publish for a while).
    await apply([track(envA, "late", at(-3600)), track(envA, "late", at(5)), track(envA, "late", at(30))]);
    await apply([exposure(envA, experimentA, "late", t0)]);
    expect(await totals(experimentA, "late")).toEqual({ count: 2, covariate: 1 });
    // Then a purchase from before the exposure arrives late (covariate), one after it (metric),
    // and one 0.5 s before the exposure: inside the clock-skew tolerance, so after.
    await apply([track(envA, "late", at(-60)), track(envA, "late", at(120)), track(envA, "late", at(-0.5))]);
    expect(await totals(experimentA, "late")).toEqual({ count: 4, covariate: 2 });
    // The per-variant sums agree with the per-unit totals, covariate product included.
    const s = await sums(experimentA);
    const units = await database.db.selectFrom("unit_metric_totals").select(["count", "covariate"]).where("experiment_id", "=", experimentA).execute();
    expect(Number(s.units)).toBe(units.length);
    expect(Number(s.sum)).toBe(units.reduce((a, u) => a + u.count, 0));
    expect(Number(s.cov)).toBe(units.reduce((a, u) => a + u.covariate, 0));
    expect(Number(s.covProduct)).toBe(units.reduce((a, u) => a + u.covariate * u.count, 0));
  });

  it("counts events in the same batch as the exposure by time, and honours a zero tolerance", async () => {
    const t0 = new Date("2026-12-02T08:00:00Z");
    const at = (ms: number) => new Date(t0.getTime() + ms);
    await apply([track(envA, "same", at(-500)), exposure(envA, experimentA, "same", t0), track(envA, "same", at(-5000))], 0);
    expect(await totals(experimentA, "same")).toEqual({ count: 0, covariate: 2 });
    await apply([track(envA, "same", at(-1))], 0);
    expect(await totals(experimentA, "same")).toEqual({ count: 0, covariate: 3 });
    await apply([track(envA, "same", at(0))], 0);
    expect(await totals(experimentA, "same")).toEqual({ count: 1, covariate: 3 });
  });
});
