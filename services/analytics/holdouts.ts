/**
 * Holdouts: a share of an environment's units kept away from a set of flags, measured against
 * everyone else. Where it lives: flags owns what is served, so each flag gets the holdout's rule,
 * written through the flags service with the caller's token (validated, versioned and audited like
 * any flag change, and in every snapshot, flagd sync included); analytics owns the measurement, so
 * the holdout itself — its flags, share and metrics — is a row here, of kind 'holdout', measured by
 * the experiments' pipeline and results with two arms: "holdout" (the control) and "general".
 *
 * The rule comes first on each flag: its condition is the slice [0, buckets) of the layer
 * `holdout:<id>` (flagd's `fractional` over `layer:holdout:<id>/<targeting key>`: a salt of its
 * own, the same bucket on every flag), its outcome null, which serves the flag's default variant.
 * So a held-out unit never reaches a rule, a rollout or an experiment of those flags.
 */
import { randomUUID } from "node:crypto";
import { create, fromJson } from "@bufbuild/protobuf";
import { timestampFromDate, ValueSchema } from "@bufbuild/protobuf/wkt";
import { Code, ConnectError, type HandlerContext } from "@connectrpc/connect";
import type {
  CreateHoldoutRequest,
  CreateHoldoutResponse,
  GetHoldoutResultsRequest,
  GetHoldoutResultsResponse,
} from "#gen/vane/experiments/v1/experiment_service_pb.js";
import { CreateHoldoutResponseSchema, GetHoldoutResultsResponseSchema } from "#gen/vane/experiments/v1/experiment_service_pb.js";
import { type Holdout, HoldoutSchema } from "#gen/vane/experiments/v1/experiments_pb.js";
import { type Rule, RuleSchema } from "#gen/vane/flags/v1/flags_pb.js";
import { requireChangeIn, requireEnvironmentScope, requirePrincipal, requireRole, Role, type Caller } from "#lib/auth/auth.ts";
import { assertVisible } from "#lib/clients/identity-directory.ts";
import { isUniqueViolation } from "#lib/data/db.ts";
import { alreadyExists, failedPrecondition, invalidArgument, notFound } from "#lib/process/errors.ts";
import type { ExperimentDeps } from "./experiment-service.ts";
import { changeFlagEnvironment } from "./experiment-lifecycle.ts";
import { loadResults } from "./results.ts";
import type { ExperimentRow } from "./schema.ts";

/** The layers of holdouts: `holdout:<id>` (the flags service reads the same prefix). */
export const HOLDOUT_LAYER_PREFIX = "holdout:";
/** Buckets of a layer: a holdout's percent is kept in steps of 0.01. */
const BUCKETS = 10_000;
export const HOLDOUT_ARM = "holdout";
export const GENERAL_ARM = "general";

/** The id of the rule a holdout puts first on each of its flags. */
export const holdoutRuleId = (id: string) => `holdout-${id}`.slice(0, 64);

/** The holdout's rule: units in its slice get the flag's default variant. */
export function holdoutRule(x: Pick<ExperimentRow, "id" | "key">, buckets: number): Rule {
  return create(RuleSchema, {
    id: holdoutRuleId(x.id),
    description: `holdout ${x.key}: these units get the default variant`,
    conditions: [{ kind: { case: "layer", value: { layerKey: `${HOLDOUT_LAYER_PREFIX}${x.id}`, start: 0, end: buckets } } }],
    outcome: { kind: { case: "jsonLogic", value: fromJson(ValueSchema, null) } },
  });
}

function toHoldout(x: ExperimentRow): Holdout {
  return create(HoldoutSchema, {
    id: x.id,
    projectId: x.project_id,
    environmentId: x.environment_id,
    key: x.key,
    name: x.name,
    percent: x.layer_share_percent,
    flagKeys: x.holdout_flag_keys,
    metricKeys: [...x.metric_keys.primary, ...x.metric_keys.secondary],
    createTime: timestampFromDate(x.created_at),
  });
}

const callerOf = (ctx: HandlerContext): Caller => ({
  principal: requirePrincipal(ctx),
  authorization: ctx.requestHeader.get("authorization"),
  signal: ctx.signal,
});

/** The holdout RPCs of the ExperimentService. */
export function holdoutMethods(deps: ExperimentDeps) {
  const { db } = deps;
  return {
    async createHoldout(req: CreateHoldoutRequest, ctx: HandlerContext): Promise<CreateHoldoutResponse> {
      const caller = callerOf(ctx);
      requireRole(caller.principal, Role.EDITOR);
      requireEnvironmentScope(caller.principal, req.environmentId);
      const scope = await deps.directory.project(req.projectId, caller);
      const env = await deps.directory.environment(req.environmentId, caller, { fresh: true });
      if (env.projectId !== scope.projectId) throw invalidArgument("environment_id must be an environment of the holdout's project");
      // It changes flags at once, so it needs what changing them needs.
      requireChangeIn(caller.principal, env);
      for (const flagKey of req.flagKeys)
        await deps.flags.getFlag({ projectId: scope.projectId, key: flagKey }, caller).catch((e: unknown) => {
          if (ConnectError.from(e).code === Code.NotFound) throw invalidArgument(`flag_keys: flag "${flagKey}" does not exist in the project`);
          throw e;
        });
      const metrics = await db
        .selectFrom("metrics")
        .select(["id", "key"])
        .where("project_id", "=", scope.projectId)
        .where("key", "in", req.metricKeys)
        .execute();
      const unknown = req.metricKeys.filter((k) => !metrics.some((m) => m.key === k));
      if (unknown.length) throw invalidArgument(`metric_keys: metrics ${unknown.join(", ")} do not exist in the project`);

      const buckets = Math.round(req.percent * (BUCKETS / 100));
      let row: ExperimentRow;
      try {
        row = await db
          .insertInto("experiments")
          .values({
            id: randomUUID(),
            organization_id: scope.organizationId,
            project_id: scope.projectId,
            environment_id: env.environmentId,
            kind: "holdout",
            flag_key: `holdout:${req.key}`,
            holdout_flag_keys: JSON.stringify(req.flagKeys),
            key: req.key,
            name: req.name,
            hypothesis: "",
            variants: JSON.stringify([
              { variant: HOLDOUT_ARM, weight: buckets },
              { variant: GENERAL_ARM, weight: BUCKETS - buckets },
            ]),
            control_variant: HOLDOUT_ARM,
            metric_keys: JSON.stringify({ primary: req.metricKeys.slice(0, 1), secondary: req.metricKeys.slice(1), guardrail: [] }),
            metric_ids: JSON.stringify(Object.fromEntries(metrics.map((m) => [m.key, m.id]))),
            layer_key: "",
            layer_share_percent: buckets / (BUCKETS / 100),
            status: "running",
            start_time: new Date(),
            shipped_variant: "",
            bandit: null,
            saved_environment: null,
            version: 1,
          })
          .returningAll()
          .executeTakeFirstOrThrow();
      } catch (err) {
        if (isUniqueViolation(err)) throw alreadyExists(`holdout "${req.key}"`);
        throw err;
      }
      const rule = holdoutRule(row, buckets);
      const reason = req.reason || `holdout ${req.key}: hold ${row.layer_share_percent}% of units out`;
      for (const flagKey of req.flagKeys)
        await changeFlagEnvironment(deps, { ...row, flag_key: flagKey }, caller, reason, async (fe) => {
          const rules = fe?.rules ?? [];
          if (rules.some((r) => r.id === rule.id)) return null;
          const other = rules.find((r) => r.id.startsWith("holdout-"));
          if (other) throw failedPrecondition(`flag "${flagKey}" is already in another holdout (rule ${other.id}); a flag can be in one holdout`);
          return { enabled: fe?.enabled ?? false, defaultVariant: fe?.defaultVariant ?? "", rules: [rule, ...rules] };
        });
      return create(CreateHoldoutResponseSchema, { holdout: toHoldout(row) });
    },

    async getHoldoutResults(req: GetHoldoutResultsRequest, ctx: HandlerContext): Promise<GetHoldoutResultsResponse> {
      const caller = callerOf(ctx);
      requireRole(caller.principal, Role.VIEWER);
      const x = await db.selectFrom("experiments").selectAll().where("id", "=", req.id).where("kind", "=", "holdout").executeTakeFirst();
      if (!x) throw notFound("holdout");
      assertVisible(caller.principal, { organizationId: x.organization_id, projectId: x.project_id }, "holdout");
      await deps.directory.project(x.project_id, caller);
      return create(GetHoldoutResultsResponseSchema, { holdout: toHoldout(x), results: await loadResults(db, x, req.confidenceLevel) });
    },
  };
}
