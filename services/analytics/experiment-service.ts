/**
 * vane.experiments.v1.ExperimentService: metrics, experiments, their start and stop through the
 * flags service (with the caller's own token, so flags applies the caller's roles and records the
 * caller in its audit log), and results from the pipeline's aggregates.
 */
import { randomUUID } from "node:crypto";
import { create } from "@bufbuild/protobuf";
import { timestampFromDate } from "@bufbuild/protobuf/wkt";
import type { HandlerContext, ServiceImpl } from "@connectrpc/connect";
import { sql } from "kysely";
import {
  CreateExperimentResponseSchema,
  CreateMetricResponseSchema,
  ExperimentService,
  GetExperimentResponseSchema,
  GetResultsResponseSchema,
  GetResultsTimelineResponseSchema,
  ListExperimentsResponseSchema,
  ListMetricsResponseSchema,
  PlanExperimentResponseSchema,
  StartExperimentResponseSchema,
  StopExperimentResponseSchema,
  UpdateExperimentSettingsResponseSchema,
} from "#gen/vane/experiments/v1/experiment_service_pb.js";
import {
  Direction,
  type Experiment,
  ExperimentSchema,
  ExperimentStatus,
  type Metric,
  MetricSchema,
  TestSides,
} from "#gen/vane/experiments/v1/experiments_pb.js";
import { requireChangeIn, requireEnvironmentScope, requirePrincipal, requireRole, Role } from "#lib/auth/auth.ts";
import { isUniqueViolation, withTransaction } from "#lib/data/db.ts";
import { aborted, alreadyExists, failedPrecondition, invalidArgument, notFound } from "#lib/process/errors.ts";
import type { Caller } from "#lib/auth/auth.ts";
import { assertVisible, type ProjectDirectory } from "#lib/clients/identity-directory.ts";
import { fromFlags, startExperiment, stopExperiment } from "./experiment-lifecycle.ts";
import { checkSettings, loadSettings, storeSettings } from "./experiment-settings.ts";
import type { FlagsClient } from "./flags-client.ts";
import { loadResults, loadTimeline } from "./results.ts";
import { metricFields, metricSettings } from "./metric-types/definition.ts";
import type { ExperimentRow, MetricRow } from "./schema.ts";
import { minimumDetectableEffect, sampleSizePerArm } from "./stats/index.ts";
import type { Db } from "./store.ts";

/** What the ExperimentService is built from. */
export interface ExperimentDeps {
  db: Db;
  directory: ProjectDirectory;
  flags: FlagsClient;
}

/** A layer has this many buckets (LayerCondition's range). */
export const LAYER_BUCKETS = 10_000;

const STATUSES: Record<string, ExperimentStatus> = {
  draft: ExperimentStatus.DRAFT,
  starting: ExperimentStatus.STARTING,
  running: ExperimentStatus.RUNNING,
  stopping: ExperimentStatus.STOPPING,
  stopped: ExperimentStatus.STOPPED,
};

function callerOf(ctx: HandlerContext): Caller {
  return { principal: requirePrincipal(ctx), authorization: ctx.requestHeader.get("authorization"), signal: ctx.signal };
}

function toMetric(m: MetricRow): Metric {
  return create(MetricSchema, {
    id: m.id,
    projectId: m.project_id,
    key: m.key,
    name: m.name,
    eventName: m.event_name,
    ...metricFields(m),
    direction: m.direction === "decrease" ? Direction.DECREASE : Direction.INCREASE,
    createTime: timestampFromDate(m.created_at),
  });
}

function toExperiment(x: ExperimentRow): Experiment {
  return create(ExperimentSchema, {
    id: x.id,
    projectId: x.project_id,
    environmentId: x.environment_id,
    flagKey: x.flag_key,
    key: x.key,
    name: x.name,
    hypothesis: x.hypothesis,
    variants: x.variants,
    controlVariant: x.control_variant,
    primaryMetricKeys: x.metric_keys.primary,
    secondaryMetricKeys: x.metric_keys.secondary,
    guardrailMetricKeys: x.metric_keys.guardrail,
    layerKey: x.layer_key,
    layerSharePercent: x.layer_share_percent,
    status: STATUSES[x.status],
    startTime: x.start_time ? timestampFromDate(x.start_time) : undefined,
    stopTime: x.stop_time ? timestampFromDate(x.stop_time) : undefined,
    shippedVariant: x.shipped_variant,
    bandit: x.bandit ?? undefined,
    version: BigInt(x.version),
    createTime: timestampFromDate(x.created_at),
    settings: loadSettings(x.settings),
  });
}

/**
 * First fit of `size` buckets among the slices already taken, in [0, LAYER_BUCKETS).
 * Returns the start, or null when no gap is wide enough.
 */
export function firstFit(taken: readonly { start: number; end: number }[], size: number): number | null {
  let cursor = 0;
  for (const t of [...taken].sort((a, b) => a.start - b.start)) {
    if (t.start - cursor >= size) return cursor;
    cursor = Math.max(cursor, t.end);
  }
  return LAYER_BUCKETS - cursor >= size ? cursor : null;
}

/** Creates the ExperimentService implementation. */
export function createExperimentService(deps: ExperimentDeps): ServiceImpl<typeof ExperimentService> {
  const { db } = deps;

  /** The experiment, after the role check and tenancy (foreign and absent are alike NOT_FOUND). */
  async function loadExperiment(id: string, ctx: HandlerContext, role: Role): Promise<{ x: ExperimentRow; caller: Caller }> {
    const caller = callerOf(ctx);
    requireRole(caller.principal, role);
    const x = await db.selectFrom("experiments").selectAll().where("id", "=", id).executeTakeFirst();
    if (!x) throw notFound("experiment");
    assertVisible(caller.principal, { organizationId: x.organization_id, projectId: x.project_id }, "experiment");
    // identity has the last word (a project moved or deleted, a key narrowed to a project).
    await deps.directory.project(x.project_id, caller);
    return { x, caller };
  }

  /**
   * Starting and stopping change the flag in the experiment's environment: an admin key of
   * another environment is refused, and a protected one needs the admin role. Checked here,
   * before the experiment moves, though flags checks the flag change again.
   */
  async function requireChangeOf(x: ExperimentRow, caller: Caller): Promise<void> {
    requireEnvironmentScope(caller.principal, x.environment_id);
    requireChangeIn(caller.principal, await deps.directory.environment(x.environment_id, caller, { fresh: true }));
  }

  return {
    async createMetric(req, ctx) {
      const caller = callerOf(ctx);
      requireRole(caller.principal, Role.EDITOR);
      const scope = await deps.directory.project(req.projectId, caller);
      const settings = metricSettings(req);
      try {
        const row = await db
          .insertInto("metrics")
          .values({
            id: randomUUID(),
            organization_id: scope.organizationId,
            project_id: scope.projectId,
            key: req.key,
            name: req.name,
            event_name: req.eventName,
            ...settings,
            direction: req.direction === Direction.DECREASE ? "decrease" : "increase",
          })
          .returningAll()
          .executeTakeFirstOrThrow();
        return create(CreateMetricResponseSchema, { metric: toMetric(row) });
      } catch (err) {
        if (isUniqueViolation(err)) throw alreadyExists(`metric "${req.key}"`);
        throw err;
      }
    },

    async listMetrics(req, ctx) {
      const caller = callerOf(ctx);
      requireRole(caller.principal, Role.VIEWER);
      await deps.directory.project(req.projectId, caller);
      const rows = await db.selectFrom("metrics").selectAll().where("project_id", "=", req.projectId).orderBy("key").execute();
      return create(ListMetricsResponseSchema, { metrics: rows.map(toMetric) });
    },

    async createExperiment(req, ctx) {
      const caller = callerOf(ctx);
      requireRole(caller.principal, Role.EDITOR);
      // A draft changes nothing yet (so editors may prepare one in a protected environment);
      // an admin key still works only in its own environment.
      requireEnvironmentScope(caller.principal, req.environmentId);
      const scope = await deps.directory.project(req.projectId, caller);
      const env = await deps.directory.environment(req.environmentId, caller);
      if (env.projectId !== scope.projectId) throw invalidArgument("environment_id must be an environment of the experiment's project");

      const names = req.variants.map((v) => v.variant);
      if (new Set(names).size !== names.length) throw invalidArgument("variants must be distinct");
      if (!(req.variants.reduce((a, v) => a + v.weight, 0) > 0)) throw invalidArgument("variant weights must add up to more than 0");
      const control = req.controlVariant || names[0];
      if (!names.includes(control)) throw invalidArgument(`control_variant "${control}" is not one of the experiment's variants`);
      const flag = await deps.flags
        .getFlag({ projectId: scope.projectId, key: req.flagKey }, caller)
        .catch((e: unknown) => fromFlags(e, "cannot create the experiment"));
      const flagVariants = new Set(flag.flag?.variants.map((v) => v.key));
      const missing = names.filter((n) => !flagVariants.has(n));
      if (missing.length) throw invalidArgument(`variants ${missing.join(", ")} are not variants of flag "${req.flagKey}"`);

      const keys = { primary: req.primaryMetricKeys, secondary: req.secondaryMetricKeys, guardrail: req.guardrailMetricKeys };
      const allKeys = [...new Set([...keys.primary, ...keys.secondary, ...keys.guardrail])];
      if (allKeys.length < keys.primary.length + keys.secondary.length + keys.guardrail.length)
        throw invalidArgument("a metric may appear once across primary, secondary and guardrail");
      const metrics = await db.selectFrom("metrics").select(["id", "key"]).where("project_id", "=", scope.projectId).where("key", "in", allKeys).execute();
      const unknown = allKeys.filter((k) => !metrics.some((m) => m.key === k));
      if (unknown.length) throw invalidArgument(`metrics ${unknown.join(", ")} do not exist in the project`);

      const bandit = req.bandit?.enabled ? { enabled: true, intervalSeconds: req.bandit.intervalSeconds, minSharePercent: req.bandit.minSharePercent } : null;
      if (bandit && bandit.intervalSeconds !== 0 && bandit.intervalSeconds < 60)
        throw invalidArgument("bandit.interval_seconds must be 0 (the default interval) or at least 60");
      if (bandit && bandit.minSharePercent * names.length > 100)
        throw invalidArgument("bandit.min_share_percent times the number of variants must not exceed 100");
      if (req.layerKey && !(req.layerSharePercent >= 0.01 && req.layerSharePercent <= 100))
        throw invalidArgument("layer_share_percent must be between 0.01 and 100 with a layer");
      const settings = checkSettings(req.settings, allKeys);

      try {
        const row = await withTransaction(db, async (trx) => {
          let slice: { start: number; end: number } | null = null;
          if (req.layerKey) {
            // One allocation at a time per layer of an environment.
            await sql`select pg_advisory_xact_lock(hashtext(${`vane:analytics:layer:${env.environmentId}:${req.layerKey}`}))`.execute(trx);
            const taken = await trx
              .selectFrom("experiments")
              .select(["layer_start", "layer_end"])
              .where("environment_id", "=", env.environmentId)
              .where("layer_key", "=", req.layerKey)
              .where("status", "in", ["draft", "starting", "running", "stopping"])
              .execute();
            const size = Math.round(req.layerSharePercent * (LAYER_BUCKETS / 100));
            const start = firstFit(
              taken.filter((t) => t.layer_start !== null && t.layer_end !== null).map((t) => ({ start: t.layer_start!, end: t.layer_end! })),
              size,
            );
            if (start === null)
              throw failedPrecondition(`layer "${req.layerKey}" has no free ${req.layerSharePercent}% slice; stop an experiment of the layer or ask for less`);
            slice = { start, end: start + size };
          }
          return trx
            .insertInto("experiments")
            .values({
              id: randomUUID(),
              organization_id: scope.organizationId,
              project_id: scope.projectId,
              environment_id: env.environmentId,
              flag_key: req.flagKey,
              key: req.key,
              name: req.name,
              hypothesis: req.hypothesis,
              variants: JSON.stringify(req.variants.map((v) => ({ variant: v.variant, weight: v.weight }))),
              control_variant: control,
              metric_keys: JSON.stringify(keys),
              metric_ids: JSON.stringify(Object.fromEntries(metrics.map((m) => [m.key, m.id]))),
              layer_key: req.layerKey,
              layer_share_percent: req.layerKey ? req.layerSharePercent : 0,
              layer_start: slice?.start ?? null,
              layer_end: slice?.end ?? null,
              status: "draft",
              shipped_variant: "",
              bandit: bandit ? JSON.stringify(bandit) : null,
              saved_environment: null,
              settings: storeSettings(settings),
              version: 1,
            })
            .returningAll()
            .executeTakeFirstOrThrow();
        });
        return create(CreateExperimentResponseSchema, { experiment: toExperiment(row) });
      } catch (err) {
        if (isUniqueViolation(err)) throw alreadyExists(`experiment "${req.key}"`);
        throw err;
      }
    },

    async getExperiment(req, ctx) {
      const { x } = await loadExperiment(req.id, ctx, Role.VIEWER);
      return create(GetExperimentResponseSchema, { experiment: toExperiment(x) });
    },

    async listExperiments(req, ctx) {
      const caller = callerOf(ctx);
      requireRole(caller.principal, Role.VIEWER);
      await deps.directory.project(req.projectId, caller);
      const rows = await db.selectFrom("experiments").selectAll().where("project_id", "=", req.projectId).orderBy("created_at", "desc").orderBy("id").execute();
      return create(ListExperimentsResponseSchema, { experiments: rows.map(toExperiment) });
    },

    async startExperiment(req, ctx) {
      const { x, caller } = await loadExperiment(req.id, ctx, Role.EDITOR);
      await requireChangeOf(x, caller);
      const row = await startExperiment(deps, x.id, caller, req.reason || `start experiment ${x.key}`);
      return create(StartExperimentResponseSchema, { experiment: toExperiment(row) });
    },

    async stopExperiment(req, ctx) {
      const { x, caller } = await loadExperiment(req.id, ctx, Role.EDITOR);
      await requireChangeOf(x, caller);
      if (req.shipVariant && !x.variants.some((v) => v.variant === req.shipVariant))
        throw invalidArgument(`ship_variant "${req.shipVariant}" is not one of the experiment's variants`);
      const ship = req.shipVariant || (x.status === "stopping" ? x.shipped_variant : "");
      const row = await stopExperiment(
        deps,
        x.id,
        caller,
        req.shipVariant,
        req.reason || (ship ? `stop experiment ${x.key}, ship ${ship}` : `stop experiment ${x.key}`),
      );
      return create(StopExperimentResponseSchema, { experiment: toExperiment(row) });
    },

    async getResults(req, ctx) {
      const { x } = await loadExperiment(req.id, ctx, Role.VIEWER);
      return create(GetResultsResponseSchema, { results: await loadResults(db, x, req.confidenceLevel) });
    },

    async getResultsTimeline(req, ctx) {
      const { x } = await loadExperiment(req.id, ctx, Role.VIEWER);
      return create(GetResultsTimelineResponseSchema, { points: await loadTimeline(db, x) });
    },

    async updateExperimentSettings(req, ctx) {
      const { x, caller } = await loadExperiment(req.id, ctx, Role.EDITOR);
      // Settings change no flag (as a draft does not): an admin key still works only in its own environment.
      requireEnvironmentScope(caller.principal, x.environment_id);
      const settings = checkSettings(req.settings, Object.keys(x.metric_ids));
      const row = await db
        .updateTable("experiments")
        .set({ settings: storeSettings(settings), version: sql`version + 1` })
        .where("id", "=", x.id)
        .where("version", "=", req.expectedVersion.toString())
        .returningAll()
        .executeTakeFirst();
      if (!row) throw aborted(`the experiment is at version ${x.version}, not expected_version ${req.expectedVersion}: reload it and retry`);
      return create(UpdateExperimentSettingsResponseSchema, { experiment: toExperiment(row) });
    },

    async planExperiment(req, ctx) {
      requirePrincipal(ctx);
      let baseline: { mean: number; variance: number };
      if (req.baseline.case === "conversionRate") baseline = { mean: req.baseline.value, variance: req.baseline.value * (1 - req.baseline.value) };
      else if (req.baseline.case === "mean") baseline = { mean: req.baseline.value.mean, variance: req.baseline.value.variance };
      else throw invalidArgument("baseline: give conversion_rate or mean");
      if (baseline.mean === 0) throw invalidArgument("mean.mean must not be 0 (a relative effect is a fraction of it)");
      const input = {
        ...baseline,
        alpha: req.alpha > 0 ? req.alpha : 0.05,
        power: req.power > 0 ? req.power : 0.8,
        sides: req.sides === TestSides.ONE_SIDED ? ("one" as const) : ("two" as const),
      };
      const perArm = req.target.case === "relativeMde" ? sampleSizePerArm(input, req.target.value) : Number(req.target.value);
      if (!(perArm <= 1e15)) throw invalidArgument("relative_mde is too small for this baseline: more than 10^15 units per arm would be needed");
      const mde = minimumDetectableEffect(input, perArm);
      const total = perArm * req.arms;
      const days = Math.ceil(total / req.unitsPerDay);
      if (!(days <= 1e15)) throw invalidArgument("units_per_day is too small: the plan would take more than 10^15 days");
      return create(PlanExperimentResponseSchema, {
        unitsPerArm: BigInt(perArm),
        totalUnits: BigInt(total),
        days: BigInt(days),
        relativeMde: mde.relative,
        absoluteMde: mde.absolute,
      });
    },
  };
}
