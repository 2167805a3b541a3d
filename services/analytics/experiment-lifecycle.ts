/**
 * Starting and stopping an experiment: two writes in two services (the flag's environment in
 * flags, the experiment row here) that cannot share a transaction. So each step is retry-safe:
 *
 *   start: draft → starting (the intent; the unique index admits one starting/running/stopping
 *          experiment per flag and environment, so of two concurrent starts exactly one wins)
 *          → the flag gets the experiment's rule (skipped when it already has it; the environment
 *          it replaces is saved on the row first) → running.
 *   stop:  running|starting → stopping (records the variant to ship and the stop time)
 *          → the flag gets the shipped variant, or its saved environment back, enabled state
 *          included (skipped when already so) → stopped.
 *
 * A failure anywhere leaves the row in starting or stopping; calling Start (or Stop) again resumes
 * from there and converges, whatever of the flag change had happened. Starts, stops and bandit
 * runs of one experiment take turns (an advisory lock held for the whole step), so a stop cannot
 * slip between a start's read of the flag and its write.
 */
import { create, type JsonValue, toJson } from "@bufbuild/protobuf";
import { Code, ConnectError } from "@connectrpc/connect";
import { sql } from "kysely";
import type { GetFlagResponse } from "#gen/vane/flags/v1/flag_service_pb.js";
import { type Rule, RuleSchema } from "#gen/vane/flags/v1/flags_pb.js";
import { isUniqueViolation, withTransaction } from "#lib/data/db.ts";
import { aborted, failedPrecondition } from "#lib/process/errors.ts";
import type { Caller } from "#lib/auth/auth.ts";
import type { FlagsClient } from "./flags-client.ts";
import type { ExperimentRow } from "./schema.ts";
import type { Db } from "./store.ts";

/** What the lifecycle steps need. */
export interface LifecycleDeps {
  db: Db;
  flags: FlagsClient;
}

type FlagEnvironment = GetFlagResponse["environments"][number];

/** The flag environment as saved before a start. */
interface SavedEnvironment {
  enabled: boolean;
  defaultVariant: string;
  rules: JsonValue[];
}

/** The id of the rule an experiment puts on its flag. */
export function experimentRuleId(x: Pick<ExperimentRow, "id">): string {
  return `experiment-${x.id}`.slice(0, 64);
}

/** The rule an experiment puts on its flag: its layer slice, then the split pinned to the experiment. */
export function experimentRule(x: ExperimentRow, variants: readonly { variant: string; weight: number }[]): Rule {
  return create(RuleSchema, {
    id: experimentRuleId(x),
    description: `experiment ${x.key}`,
    conditions:
      x.layer_key && x.layer_start !== null && x.layer_end !== null
        ? [{ kind: { case: "layer", value: { layerKey: x.layer_key, start: x.layer_start, end: x.layer_end } } }]
        : [],
    outcome: {
      kind: {
        case: "rollout",
        value: {
          variants: variants.map((v) => ({ variant: v.variant, weight: v.weight })),
          seed: x.id,
          experimentId: x.id,
          exposureDimensions: x.breakdown_dimensions,
        },
      },
    },
  });
}

/**
 * The flag's rules with the experiment's rule placed after the targeted (conditional) rules and
 * ahead of the first unconditional one: kill switches and hand-picked audiences keep priority and
 * stay out of the experiment, the catch-all still serves whoever a layered experiment leaves out.
 */
export function withExperimentRule(rules: readonly Rule[], rule: Rule): Rule[] {
  const at = rules.findIndex((r) => r.conditions.length === 0);
  const i = at < 0 ? rules.length : at;
  return [...rules.slice(0, i), rule, ...rules.slice(i)];
}

/** Maps a flags error to what our caller should see. */
export function fromFlags(err: unknown, what: string): never {
  const e = ConnectError.from(err);
  if (e.code === Code.NotFound) throw failedPrecondition(`${what}: the flag is not found in the experiment's project`);
  throw e;
}

/**
 * Reads the flag's environment and, unless `decide` says there is nothing to do (null), replaces
 * it; retries when someone else changed it in between. Returns the new config version, if changed.
 */
export async function changeFlagEnvironment(
  deps: LifecycleDeps,
  x: ExperimentRow,
  caller: Caller,
  reason: string,
  decide: (env: FlagEnvironment | undefined) => Promise<{ enabled: boolean; defaultVariant: string; rules: Rule[] } | null>,
): Promise<bigint | null> {
  for (let attempt = 0; ; attempt++) {
    const flag = await deps.flags
      .getFlag({ projectId: x.project_id, key: x.flag_key }, caller)
      .catch((e: unknown) => fromFlags(e, "cannot configure the flag"));
    const env = flag.environments.find((e) => e.environmentId === x.environment_id);
    const next = await decide(env);
    if (!next) return null;
    try {
      const r = await deps.flags.updateFlagEnvironment(
        { environmentId: x.environment_id, flagKey: x.flag_key, expectedVersion: env?.version ?? 0n, ...next, reason },
        caller,
      );
      return r.configVersion;
    } catch (err) {
      if (ConnectError.from(err).code !== Code.Aborted || attempt >= 4) throw err;
    }
  }
}

/**
 * Runs `fn` on the experiment's current row while holding its lock. The lock lives in a
 * transaction of its own (kept open across the calls to flags); `fn` writes through `db`.
 */
export async function withExperimentLock<T>(db: Db, id: string, fn: (x: ExperimentRow) => Promise<T>): Promise<T> {
  return withTransaction(
    db,
    async (trx) => {
      await sql`select pg_advisory_xact_lock(hashtext(${`vane:analytics:experiment:${id}`}))`.execute(trx);
      return fn(await db.selectFrom("experiments").selectAll().where("id", "=", id).executeTakeFirstOrThrow());
    },
    { retries: 0 },
  );
}

/** Moves the row from one status to the next, if it is still at `x.version`. */
async function transition(db: Db, x: ExperimentRow, values: Record<string, unknown>): Promise<ExperimentRow> {
  const row = await db
    .updateTable("experiments")
    .set({ ...values, version: sql`version + 1` } as never)
    .where("id", "=", x.id)
    .where("version", "=", x.version)
    .returningAll()
    .executeTakeFirst();
  if (!row) throw aborted("the experiment changed meanwhile: reload it and retry");
  return row;
}

const hasRule = (env: FlagEnvironment | undefined, x: ExperimentRow) => env?.rules.some((r) => r.id === experimentRuleId(x)) ?? false;

/** Starts (or resumes starting) an experiment. */
export function startExperiment(deps: LifecycleDeps, id: string, caller: Caller, reason: string): Promise<ExperimentRow> {
  return withExperimentLock(deps.db, id, (x) => start(deps, x, caller, reason));
}

async function start(deps: LifecycleDeps, x: ExperimentRow, caller: Caller, reason: string): Promise<ExperimentRow> {
  if (x.status === "draft") {
    try {
      x = await transition(deps.db, x, { status: "starting" });
    } catch (err) {
      if (!isUniqueViolation(err)) throw err;
      const other = await deps.db
        .selectFrom("experiments")
        .select("key")
        .where("environment_id", "=", x.environment_id)
        .where("flag_key", "=", x.flag_key)
        .where("status", "in", ["starting", "running", "stopping"])
        .executeTakeFirst();
      throw failedPrecondition(`experiment "${other?.key ?? "?"}" is already running on this flag in this environment; stop it first`);
    }
  } else if (x.status !== "starting") {
    throw failedPrecondition(`the experiment is ${x.status}; only a draft can start`);
  }
  const id = x.id;
  await changeFlagEnvironment(deps, x, caller, reason, async (env) => {
    if (hasRule(env, x)) return null; // an earlier attempt got this far
    const saved: SavedEnvironment = {
      enabled: env?.enabled ?? false,
      defaultVariant: env?.defaultVariant ?? "",
      rules: (env?.rules ?? []).map((r) => toJson(RuleSchema, r)),
    };
    // Saved before the flag changes, so a stop can restore it whatever happens next.
    const r = await deps.db
      .updateTable("experiments")
      .set({ saved_environment: JSON.stringify(saved) })
      .where("id", "=", id)
      .where("status", "=", "starting")
      .executeTakeFirst();
    if (r.numUpdatedRows === 0n) throw aborted("the experiment changed meanwhile: reload it and retry");
    return { enabled: true, defaultVariant: env?.defaultVariant ?? "", rules: withExperimentRule(env?.rules ?? [], experimentRule(x, x.variants)) };
  });
  const current = await deps.db.selectFrom("experiments").selectAll().where("id", "=", id).executeTakeFirstOrThrow();
  if (current.status !== "starting") throw aborted(`the experiment became ${current.status} meanwhile: reload it`);
  return transition(deps.db, current, { status: "running", start_time: new Date() });
}

/** Stops (or resumes stopping) an experiment, optionally shipping a variant. */
export function stopExperiment(deps: LifecycleDeps, id: string, caller: Caller, shipVariant: string, reason: string): Promise<ExperimentRow> {
  return withExperimentLock(deps.db, id, (x) => stop(deps, x, caller, shipVariant, reason));
}

async function stop(deps: LifecycleDeps, x: ExperimentRow, caller: Caller, shipVariant: string, reason: string): Promise<ExperimentRow> {
  if (x.status === "running" || x.status === "starting") {
    x = await transition(deps.db, x, { status: "stopping", stop_time: new Date(), shipped_variant: shipVariant });
  } else if (x.status === "stopping") {
    if (shipVariant && shipVariant !== x.shipped_variant) {
      throw failedPrecondition(
        `a stop ${x.shipped_variant ? `shipping "${x.shipped_variant}"` : "without shipping"} is in progress; retry it with the same ship_variant`,
      );
    }
  } else {
    throw failedPrecondition(`the experiment is ${x.status}; only a running one can stop`);
  }
  const ship = x.shipped_variant;
  const saved = x.saved_environment as SavedEnvironment | null;
  await changeFlagEnvironment(deps, x, caller, reason, async (env) => {
    const rules = env?.rules ?? [];
    const at = rules.findIndex((r) => r.id === experimentRuleId(x));
    if (ship) {
      // The winner becomes the default for everyone the experiment's rule reached: the rules
      // ahead of it stay, the rules behind it (reachable only past the experiment) go.
      const done = env?.enabled && env.defaultVariant === ship && at < 0;
      return done ? null : { enabled: true, defaultVariant: ship, rules: at < 0 ? rules : rules.slice(0, at) };
    }
    // Without the experiment's rule the flag is already restored (or was never changed). Only that
    // rule goes: edits made while the experiment ran stay.
    if (at < 0) return null;
    return { enabled: saved?.enabled ?? env?.enabled ?? false, defaultVariant: env?.defaultVariant ?? "", rules: rules.filter((_, i) => i !== at) };
  });
  return transition(deps.db, x, { status: "stopped" });
}
