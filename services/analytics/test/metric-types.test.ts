/**
 * The metric types end to end on real Postgres and NATS: ratio across events (with and without a
 * pre-period for CUPED), a quantile, a conversion within 24 h of exposure, retention between day 7
 * and 14, absolute and quantile caps — defined through CreateMetric, fed by tracked events, read
 * through GetResults and GetResultsTimeline, each number checked against the same definition
 * computed here from the generated data. Events "now" go through Track; events that must lie in
 * the past (the pre-period, day 7 of retention) and the exposures are published on the stream with
 * their time, since Track stamps its own receive time.
 */
import { randomUUID } from "node:crypto";
import { create, fromJson, type MessageInitShape, toBinary } from "@bufbuild/protobuf";
import { timestampFromDate, ValueSchema } from "@bufbuild/protobuf/wkt";
import { Code } from "@connectrpc/connect";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { EventService } from "#gen/vane/events/v1/event_service_pb.js";
import { EventEnvelopeSchema } from "#gen/vane/events/v1/events_pb.js";
import { ExperimentService } from "#gen/vane/experiments/v1/experiment_service_pb.js";
import { Aggregation, Direction, MetricKind, type MetricResult } from "#gen/vane/experiments/v1/experiments_pb.js";
import { FlagService } from "#gen/vane/flags/v1/flag_service_pb.js";
import { FlagType } from "#gen/vane/flags/v1/flags_pb.js";
import { eventually } from "#test/support/harness.ts";
import { createRng } from "../stats/rng.ts";
import { type AnalyticsHarness, startAnalytics, type Tenant } from "./harness.ts";

const HOUR = 3_600_000;
const DAY = 24 * HOUR;
const variants = ["control", "treatment"].map((key) => ({ key, value: fromJson(ValueSchema, key) }));

/** Generated units: 240 exposed 20 days ago, 60 an hour ago; odd units in treatment. */
function makeUnits(now: number) {
  const rng = createRng(2026);
  return Array.from({ length: 300 }, (_, i) => {
    const treatment = i % 2 === 1;
    const recent = i >= 240;
    const pre = 10 + 5 * (i % 7);
    const base = 100 + Math.floor(100 * rng.uniform());
    return {
      key: `unit-${i}`,
      variant: treatment ? "treatment" : "control",
      t0: recent ? now - HOUR : now - 20 * DAY,
      recent,
      pre,
      preSessions: 1 + (i % 3),
      sessions: 1 + (i % 4),
      purchase: pre + (treatment ? 20 : 0) + Math.round(10 * rng.uniform()),
      clicks: (i % 5) + (treatment ? 2 : 0),
      visits: 2 + (i % 3),
      loads: Array.from({ length: 1 + (i % 4) }, (_, j) => Math.round(base * (treatment ? 0.6 : 1) * (1 + j / 10))),
      earlyPurchase: !recent && rng.uniform() < (treatment ? 0.5 : 0.2),
      returned: !recent && rng.uniform() < (treatment ? 0.6 : 0.3),
    };
  });
}
type Unit = ReturnType<typeof makeUnits>[number];

const sum = (xs: readonly number[]) => xs.reduce((a, b) => a + b, 0);
const mean = (xs: readonly number[]) => sum(xs) / xs.length;
/** Postgres' percentile_disc: the smallest value with at least a share p at or below it. */
const percentileDisc = (xs: readonly number[], p: number) => [...xs].sort((a, b) => a - b)[Math.ceil(p * xs.length) - 1];
/** Postgres' percentile_cont: linear interpolation between the order statistics. */
function percentileCont(xs: readonly number[], p: number) {
  const s = [...xs].sort((a, b) => a - b);
  const h = p * (s.length - 1);
  return s[Math.floor(h)] + (h - Math.floor(h)) * (s[Math.ceil(h)] - s[Math.floor(h)]);
}

describe("metric types end to end", () => {
  let h: AnalyticsHarness;
  let t: Tenant;
  beforeAll(async () => {
    h = await startAnalytics();
    t = await h.seedTenant();
    const flags = h.client(FlagService, t.ownerToken);
    await flags.createFlag({ projectId: t.projectId, key: "checkout", name: "checkout", type: FlagType.STRING, variants });
    await flags.updateFlagEnvironment({
      environmentId: t.environmentId,
      flagKey: "checkout",
      enabled: true,
      defaultVariant: "control",
      rules: [{ outcome: { kind: { case: "variant", value: "control" } } }],
    });
  });
  afterAll(() => h?.close());

  const base = (key: string, eventName: string, kind: MetricKind) => ({ key, name: key, eventName, kind, direction: Direction.INCREASE });

  it("refuses settings that do not fit the kind, naming the field", async () => {
    const x = h.client(ExperimentService, t.ownerToken);
    const p = { projectId: t.projectId };
    const cases: [object, RegExp][] = [
      [base("r", "purchase", MetricKind.RATIO), /denominator_event_name is required/],
      [{ ...base("c", "purchase", MetricKind.COUNT), denominatorEventName: "session" }, /denominator_event_name applies to ratio/],
      [{ ...base("c", "purchase", MetricKind.SUM), numeratorAggregation: Aggregation.COUNT }, /numerator_aggregation applies to ratio/],
      [base("q", "load", MetricKind.QUANTILE), /quantile is required/],
      [{ ...base("q", "load", MetricKind.QUANTILE), quantile: 1.5 }, /quantile/],
      [{ ...base("s", "load", MetricKind.SUM), quantile: 0.5 }, /quantile applies to quantile/],
      [{ ...base("t", "session", MetricKind.RETENTION), retentionStartDays: 7, retentionEndDays: 7 }, /retention_end_days must be greater/],
      [{ ...base("t", "session", MetricKind.RETENTION), retentionEndDays: 7, windowSeconds: 60 }, /window_seconds/],
      [{ ...base("c", "session", MetricKind.CONVERSION), retentionEndDays: 7 }, /retention_end_days applies to retention/],
      [{ ...base("c", "purchase", MetricKind.CONVERSION), capValue: 10 }, /cap_value applies to count, sum, mean, ratio/],
      [{ ...base("q", "load", MetricKind.QUANTILE), quantile: 0.5, capQuantile: 0.9 }, /cap_quantile applies/],
      [{ ...base("s", "purchase", MetricKind.SUM), capValue: 10, capQuantile: 0.9 }, /cap_value and cap_quantile/],
      [{ ...base("s", "purchase", MetricKind.SUM), capQuantile: 1 }, /cap_quantile/],
      [{ ...base("s", "purchase", MetricKind.SUM), windowSeconds: -1 }, /window_seconds/],
      [{ ...base("s", "purchase", MetricKind.SUM), capValue: -3 }, /cap_value/],
    ];
    for (const [req, message] of cases) {
      await expect(x.createMetric({ ...p, ...req }), JSON.stringify(req)).rejects.toMatchObject({ code: Code.InvalidArgument, message });
    }
    expect((await x.listMetrics(p)).metrics).toEqual([]);
  });

  it("compute every type from events through Track, in results and the timeline", async () => {
    const x = h.client(ExperimentService, t.ownerToken);
    const p = { projectId: t.projectId };
    const created = [
      { ...base("rps", "purchase", MetricKind.RATIO), denominatorEventName: "session" },
      { ...base("cps", "click", MetricKind.RATIO), denominatorEventName: "session", numeratorAggregation: Aggregation.COUNT },
      // "visit" is no metric's event_name: the pipeline keeps it because it is a denominator.
      { ...base("cpv", "click", MetricKind.RATIO), denominatorEventName: "visit", numeratorAggregation: Aggregation.COUNT },
      { ...base("load_p90", "page_load", MetricKind.QUANTILE), quantile: 0.9, direction: Direction.DECREASE },
      { ...base("conv24h", "purchase", MetricKind.CONVERSION), windowSeconds: 86_400 },
      { ...base("ret7", "session", MetricKind.RETENTION), retentionStartDays: 7, retentionEndDays: 14 },
      { ...base("load_cap", "page_load", MetricKind.SUM), capValue: 300 },
      { ...base("load_pcap", "page_load", MetricKind.SUM), capQuantile: 0.5 },
    ];
    for (const m of created) await x.createMetric({ ...p, ...m });
    const listed = new Map((await x.listMetrics(p)).metrics.map((m) => [m.key, m]));
    expect(listed.get("cps")).toMatchObject({ kind: MetricKind.RATIO, denominatorEventName: "session", numeratorAggregation: Aggregation.COUNT });
    expect(listed.get("load_p90")).toMatchObject({ kind: MetricKind.QUANTILE, quantile: 0.9 });
    expect(listed.get("ret7")).toMatchObject({ retentionStartDays: 7, retentionEndDays: 14 });
    expect(listed.get("conv24h")?.windowSeconds).toBe(86_400);
    expect([listed.get("load_cap")?.capValue, listed.get("load_pcap")?.capQuantile]).toEqual([300, 0.5]);

    const experiment = (
      await x.createExperiment({
        ...p,
        environmentId: t.environmentId,
        flagKey: "checkout",
        key: "types",
        name: "types",
        variants: [
          { variant: "control", weight: 1 },
          { variant: "treatment", weight: 1 },
        ],
        primaryMetricKeys: ["rps"],
        secondaryMetricKeys: created.slice(1).map((m) => m.key),
      })
    ).experiment!;
    await x.startExperiment({ id: experiment.id });

    const now = Date.now();
    const units = makeUnits(now);
    const envelope = (time: number, payload: MessageInitShape<typeof EventEnvelopeSchema>["payload"]) =>
      toBinary(
        EventEnvelopeSchema,
        create(EventEnvelopeSchema, {
          eventId: randomUUID(),
          organizationId: t.orgId,
          projectId: t.projectId,
          environmentId: t.environmentId,
          receiveTime: timestampFromDate(new Date(time)),
          payload,
        }),
      );
    const publishPast = (u: Unit, name: string, time: number, value = 0) =>
      h.bus.js.publish(
        `${h.subjectPrefix}.${t.environmentId}.track`,
        envelope(time, { case: "track", value: { eventId: randomUUID(), name, unitKey: u.key, value } }),
      );
    const past: Promise<unknown>[] = [];
    for (const u of units) {
      past.push(publishPast(u, "purchase", u.t0 - DAY, u.pre));
      for (let s = 0; s < u.preSessions; s++) past.push(publishPast(u, "session", u.t0 - DAY));
      if (u.earlyPurchase) past.push(publishPast(u, "purchase", u.t0 + HOUR, 5));
      if (u.returned) past.push(publishPast(u, "session", u.t0 + 8 * DAY));
      past.push(
        h.bus.js.publish(
          `${h.subjectPrefix}.${t.environmentId}.exposure`,
          envelope(u.t0, {
            case: "exposure",
            value: { flagKey: "checkout", variant: u.variant, experimentId: experiment.id, unitKey: u.key, time: timestampFromDate(new Date(u.t0)) },
          }),
        ),
      );
    }
    await Promise.all(past);
    const serverToken = await h.sign({ sub: randomUUID(), org: t.orgId, prj: t.projectId, env: t.environmentId, kind: "server" });
    const track = h.client(EventService, serverToken);
    const events = units.flatMap((u) => [
      ...Array.from({ length: u.sessions }, () => ({ name: "session", unitKey: u.key })),
      { name: "purchase", unitKey: u.key, value: u.purchase },
      ...Array.from({ length: u.clicks }, () => ({ name: "click", unitKey: u.key })),
      ...Array.from({ length: u.visits }, () => ({ name: "visit", unitKey: u.key })),
      ...u.loads.map((value) => ({ name: "page_load", unitKey: u.key, value })),
    ]);
    for (let i = 0; i < events.length; i += 1000) {
      const r = await track.track({ events: events.slice(i, i + 1000).map((e) => ({ ...e, eventId: randomUUID() })) });
      expect(r.rejected).toEqual([]);
    }
    // Every event applied (the consumer has nothing pending), then one read of the results.
    const consumer = h.analytics.pipeline.consumerName;
    await eventually(
      async () => {
        const info = await h.bus.jsm.consumers.info(h.eventsStream, consumer);
        expect([info.num_pending, info.num_ack_pending]).toEqual([0, 0]);
        return true;
      },
      60_000,
      "the pipeline to catch up",
    );
    const metricOf = (ms: readonly MetricResult[], key: string) => ms.find((m) => m.metricKey === key)!;
    const results = (await x.getResults({ id: experiment.id })).results!;
    const arm = (v: string) => units.filter((u) => u.variant === v);
    const arms = ["control", "treatment"];

    // Ratio across events without a pre-period (clicks): the plain ratio of sums, no CUPED.
    const cps = metricOf(results.metrics, "cps").variants;
    arms.forEach((v, i) => expect(cps[i].mean).toBeCloseTo(sum(arm(v).map((u) => u.clicks)) / sum(arm(v).map((u) => u.sessions + (u.returned ? 1 : 0))), 9));
    expect(cps[1].cupedApplied).toBe(false);
    expect(cps[1].pValue).toBeLessThan(0.01);
    const cpv = metricOf(results.metrics, "cpv").variants;
    arms.forEach((v, i) => expect(cpv[i].mean).toBeCloseTo(sum(arm(v).map((u) => u.clicks)) / sum(arm(v).map((u) => u.visits)), 9));

    // Ratio with a pre-period for both events: CUPED applies, near the plain ratio.
    const rps = metricOf(results.metrics, "rps").variants;
    expect(rps[1].cupedApplied).toBe(true);
    expect(rps[1].cupedVarianceReduction).toBeGreaterThan(0);
    arms.forEach((v, i) => {
      const plain = sum(arm(v).map((u) => u.purchase + (u.earlyPurchase ? 5 : 0))) / sum(arm(v).map((u) => u.sessions + (u.returned ? 1 : 0)));
      expect(Math.abs(rps[i].mean - plain)).toBeLessThan(3 * rps[i].standardError);
    });

    // Quantile of events: percentile_disc per arm, units with events, a significant 40% drop.
    const p90 = metricOf(results.metrics, "load_p90");
    expect(p90.direction).toBe(Direction.DECREASE);
    arms.forEach((v, i) =>
      expect(p90.variants[i].mean).toBe(
        percentileDisc(
          arm(v).flatMap((u) => u.loads),
          0.9,
        ),
      ),
    );
    expect(p90.variants.map((v) => v.units)).toEqual([150n, 150n]);
    expect(p90.variants[1].absoluteLiftInterval!.upper).toBeLessThan(0);
    expect(p90.variants[1].pValue).toBeLessThan(0.05);

    // Conversion within 24 h: today's purchases count for the units exposed an hour ago only.
    const conv = metricOf(results.metrics, "conv24h").variants;
    arms.forEach((v, i) => expect(conv[i].mean).toBeCloseTo(mean(arm(v).map((u) => (u.recent || u.earlyPurchase ? 1 : 0))), 9));

    // Retention between day 7 and 14: only units whose window has ended, and a warning about the rest.
    const ret = metricOf(results.metrics, "ret7").variants;
    expect(ret.map((v) => v.units)).toEqual([120n, 120n]);
    arms.forEach((v, i) =>
      expect(ret[i].mean).toBeCloseTo(
        mean(
          arm(v)
            .filter((u) => !u.recent)
            .map((u) => (u.returned ? 1 : 0)),
        ),
        9,
      ),
    );
    const open = results.warnings.filter((w) => w.code === "retention_window_open");
    expect(open.map((w) => w.metricKey)).toEqual(["ret7"]);
    expect(open[0].message).toMatch(/^60 exposed units are left out/);

    // Caps: absolute, and at the median of all units' totals (pooled across arms).
    const loadCap = metricOf(results.metrics, "load_cap").variants;
    arms.forEach((v, i) => expect(loadCap[i].mean).toBeCloseTo(mean(arm(v).map((u) => Math.min(300, sum(u.loads)))), 9));
    const median = percentileCont(
      units.map((u) => sum(u.loads)),
      0.5,
    );
    const pcap = metricOf(results.metrics, "load_pcap").variants;
    arms.forEach((v, i) => expect(pcap[i].mean).toBeCloseTo(mean(arm(v).map((u) => Math.min(median, sum(u.loads)))), 9));

    // The timeline: one look at the end of each day with data; the last one has everything.
    const points = (await x.getResultsTimeline({ id: experiment.id })).points;
    const day = (ms: number) => new Date(ms).toISOString().slice(0, 10);
    const days = new Set(units.flatMap((u) => [u.t0, u.earlyPurchase ? u.t0 + HOUR : u.t0, u.returned ? u.t0 + 8 * DAY : u.t0, now].map(day)));
    expect(points.map((pt) => day(pt.time!.seconds ? Number(pt.time!.seconds) * 1000 - 1 : 0))).toEqual([...days].sort());
    const [first, last] = [points[0].results!, points.at(-1)!.results!];
    expect(metricOf(first.metrics, "conv24h").variants.map((v) => v.units)).toEqual([120n, 120n]);
    expect(metricOf(last.metrics, "cps").variants[1].mean).toBeCloseTo(cps[1].mean, 9);
    expect(metricOf(last.metrics, "load_p90").variants[0].mean).toBe(p90.variants[0].mean);
  }, 120_000);
});
