/**
 * The optional Thompson-sampling bandit of an experiment: on a schedule, for each running
 * experiment with a bandit that is due, the primary metric's current per-arm results become
 * posteriors, their chances of being best become new traffic weights (never below the
 * experiment's minimum share), and the experiment's rule on its flag is re-weighted through the
 * flags service's public API — so every re-weighting is a flags audit entry. Each run (or failed
 * attempt) is recorded in bandit_runs.
 *
 * A run is claimed by moving the experiment's bandit_run_at forward in one conditional update,
 * so several analytics replicas never re-weight the same experiment twice for one interval.
 */
import { create } from "@bufbuild/protobuf";
import { randomUUID } from "node:crypto";
import { sql } from "kysely";
import { PrincipalSchema } from "#gen/vane/identity/v1/identity_pb.js";
import { Role } from "#lib/auth/auth.ts";
import { failedPrecondition } from "#lib/process/errors.ts";
import type { Logger } from "#lib/process/logger.ts";
import type { Caller } from "#lib/auth/auth.ts";
import { changeFlagEnvironment, experimentRule, experimentRuleId, withExperimentLock } from "./experiment-lifecycle.ts";
import type { FlagsClient } from "./flags-client.ts";
import { timestampMs } from "@bufbuild/protobuf/wkt";
import { createClient, type Interceptor } from "@connectrpc/connect";
import { createGrpcTransport } from "@connectrpc/connect-node";
import { AuthService } from "#gen/vane/identity/v1/auth_service_pb.js";
import { loadResults } from "./results.ts";
import type { ExperimentRow } from "./schema.ts";
import { type BanditArm, thompsonSampling } from "./stats/index.ts";
import type { Db } from "./store.ts";

/** The `Authorization` header value the bandit calls flags with, for an experiment's project. */
export type BanditCredentials = (scope: { organizationId: string; projectId: string }) => Promise<string>;

/** Options for {@link createBanditRunner}. */
export interface BanditRunnerOptions {
  db: Db;
  flags: FlagsClient;
  credentials: BanditCredentials;
  logger: Logger;
  /** Interval of experiments whose bandit says 0 (`VANE_BANDIT_INTERVAL`, default 1 h). */
  defaultIntervalMs?: number;
  /** How often due experiments are looked for (default 60 s, the shortest interval allowed). */
  tickMs?: number;
}

/** One re-weighting. */
export interface BanditRun {
  experimentId: string;
  /** In the experiment's variant order. */
  weights: number[];
  probabilityBest: number[];
  error: string;
}

/** The bandit scheduler. */
export interface BanditRunner {
  /** Re-weights every due experiment now (the schedule calls this; tests call it directly). */
  tick(now?: Date): Promise<BanditRun[]>;
  start(): void;
  stop(): Promise<void>;
}

/** Rollout weights are integers: shares in basis points, each arm at least 1 when it has a floor. */
export function toRolloutWeights(weights: readonly number[], minWeight: number): number[] {
  return weights.map((w) => Math.max(minWeight > 0 ? 1 : 0, Math.round(w * 10_000)));
}

/** Creates the runner; `start()` begins the schedule. */
export function createBanditRunner(opts: BanditRunnerOptions): BanditRunner {
  const log = opts.logger.child({ component: "bandit" });
  const defaultIntervalMs = opts.defaultIntervalMs ?? 3_600_000;
  let timer: NodeJS.Timeout | undefined;
  let running: Promise<unknown> = Promise.resolve();

  /** Claims the experiment's run for this interval; false when another replica (or tick) has it. */
  async function claim(x: ExperimentRow, now: Date): Promise<boolean> {
    const r = await opts.db
      .updateTable("experiments")
      .set({ bandit_run_at: now })
      .where("id", "=", x.id)
      .where("status", "=", "running")
      .where((eb) => (x.bandit_run_at === null ? eb("bandit_run_at", "is", null) : eb("bandit_run_at", "=", x.bandit_run_at)))
      .executeTakeFirst();
    return r.numUpdatedRows === 1n;
  }

  /** The primary metric's arms as posteriors, in the experiment's variant order; null without data. */
  async function arms(x: ExperimentRow): Promise<{ arms: BanditArm[]; direction: "higher" | "lower" } | null> {
    const results = await loadResults(opts.db, x, 0.95);
    const primary = results.metrics.find((m) => m.role === "primary");
    if (!primary) return null;
    const metricId = x.metric_ids[primary.metricKey];
    const metric = await opts.db.selectFrom("metrics").select("kind").where("id", "=", metricId).executeTakeFirst();
    const byVariant = new Map(primary.variants.map((v) => [v.variant, v]));
    const out: BanditArm[] = [];
    for (const { variant } of x.variants) {
      const v = byVariant.get(variant);
      const n = Number(v?.units ?? 0n);
      if (metric?.kind === "conversion") {
        out.push({ successes: Math.round((v?.mean ?? 0) * n) || 0, trials: n });
      } else {
        if (!v || n < 2 || !Number.isFinite(v.standardError)) return null;
        out.push({ mean: v.mean, standardError: v.standardError });
      }
    }
    return { arms: out, direction: primary.direction === 2 ? "lower" : "higher" };
  }

  async function runOne(x: ExperimentRow, now: Date): Promise<BanditRun> {
    const bandit = x.bandit!;
    const minWeight = bandit.minSharePercent / 100;
    const base = { experimentId: x.id, weights: [] as number[], probabilityBest: [] as number[], error: "" };
    let flagVersion: bigint | null = null;
    try {
      const input = await arms(x);
      if (!input) throw failedPrecondition("not enough data in the primary metric yet");
      const sampled = thompsonSampling(input.arms, { direction: input.direction, minWeight, seed: now.getTime() % 2 ** 31, draws: 20_000 });
      base.weights = sampled.weights;
      base.probabilityBest = sampled.probabilityBest;
      const weights = toRolloutWeights(sampled.weights, minWeight);
      const rollout = x.variants.map((v, i) => ({ variant: v.variant, weight: weights[i] }));
      const caller: Caller = {
        principal: create(PrincipalSchema, { subject: "analytics-bandit", organizationId: x.organization_id, projectId: x.project_id, role: Role.ADMIN }),
        authorization: await opts.credentials({ organizationId: x.organization_id, projectId: x.project_id }),
      };
      flagVersion = await changeFlagEnvironment(opts, x, caller, `bandit re-weighting of experiment ${x.key}`, async (env) => {
        const at = env?.rules.findIndex((r) => r.id === experimentRuleId(x)) ?? -1;
        if (!env || at < 0) throw failedPrecondition(`the flag no longer carries experiment ${x.key}'s rule`);
        const rules = [...env.rules];
        rules[at] = experimentRule(x, rollout);
        return { enabled: env.enabled, defaultVariant: env.defaultVariant, rules };
      });
      log.info({ experiment: x.id, weights: rollout }, "bandit re-weighted the rollout");
    } catch (err) {
      base.error = err instanceof Error ? err.message : String(err);
      log.warn({ err, experiment: x.id }, "bandit run failed");
    }
    await opts.db
      .insertInto("bandit_runs")
      .values({
        id: randomUUID(),
        experiment_id: x.id,
        run_at: now,
        weights: JSON.stringify(base.weights),
        probability_best: JSON.stringify(base.probabilityBest),
        flag_version: flagVersion,
        error: base.error,
      })
      .execute();
    return base;
  }

  async function tick(now = new Date()): Promise<BanditRun[]> {
    const due = await opts.db
      .selectFrom("experiments")
      .selectAll()
      .where("status", "=", "running")
      .where(sql<boolean>`(bandit ->> 'enabled')::boolean`)
      .execute();
    const runs: BanditRun[] = [];
    for (const x of due) {
      const intervalMs = x.bandit!.intervalSeconds > 0 ? x.bandit!.intervalSeconds * 1000 : defaultIntervalMs;
      // The first run waits one interval after the start, so the arms have data.
      const last = x.bandit_run_at ?? x.start_time;
      if (last && now.getTime() - new Date(last).getTime() < intervalMs) continue;
      if (!(await claim(x, now))) continue;
      // Under the experiment's lock: a stop in progress finishes first, and then the run sees it.
      const run = await withExperimentLock(opts.db, x.id, (current) => (current.status === "running" ? runOne(current, now) : Promise.resolve(null)));
      if (run) runs.push(run);
    }
    return runs;
  }

  return {
    tick,
    start() {
      timer = setInterval(() => {
        running = tick().catch((err: unknown) => log.error({ err }, "bandit tick failed"));
      }, opts.tickMs ?? 60_000);
      timer.unref();
    },
    async stop() {
      clearInterval(timer);
      await running;
    },
  };
}

/**
 * Credentials from a token signer in the same process (`npm start`: identity's key ring). Role
 * admin: a bandit only re-weights the rollout of an experiment someone allowed to change its
 * environment started, protected environments included.
 */
export function signedBanditCredentials(sign: (claims: Record<string, string>, ttlMs: number) => Promise<{ token: string }>): BanditCredentials {
  return async ({ organizationId, projectId }) =>
    `Bearer ${(await sign({ sub: "service:analytics-bandit", org: organizationId, prj: projectId, role: "admin", kind: "admin" }, 60_000)).token}`;
}

/**
 * Credentials from an API key exchanged at identity (the service on its own, in Kubernetes): a
 * personal key of an admin (every environment of the organization), or an admin key (its own
 * environment only), whose token is cached until shortly before it expires. Bandits of
 * experiments the key cannot reach fail their run, logged.
 */
export function apiKeyBanditCredentials(opts: { identityUrl: string; apiKey: string; interceptors?: Interceptor[] }): BanditCredentials {
  const auth = createClient(AuthService, createGrpcTransport({ baseUrl: opts.identityUrl, interceptors: opts.interceptors }));
  let cached: { header: string; refreshAtMs: number } | undefined;
  return async () => {
    if (cached && Date.now() < cached.refreshAtMs) return cached.header;
    const res = await auth.exchangeApiKey({ apiKey: opts.apiKey }, { timeoutMs: 10_000 });
    const expiresMs = res.expireTime ? timestampMs(res.expireTime) : Date.now() + 60_000;
    cached = { header: `Bearer ${res.accessToken}`, refreshAtMs: expiresMs - Math.min(60_000, (expiresMs - Date.now()) / 2) };
    return cached.header;
  };
}
