/** Reads and writes of flags shared by the FlagService RPCs (inside their transactions). */
import { randomUUID } from "node:crypto";
import { create } from "@bufbuild/protobuf";
import { sql } from "kysely";
import { type Rule, RuleSchema, type Variant } from "#gen/vane/flags/v1/flags_pb.js";
import { failedPrecondition, notFound } from "#lib/process/errors.ts";
import type { FlagsDeps } from "./access.ts";
import { rulesFromRow, rulesToJson } from "./convert.ts";
import type { EnvironmentRef } from "#lib/clients/identity-directory.ts";
import type { FlagEnvironmentRow, FlagRow, StoredMetadata } from "./schema.ts";
import type { Trx } from "./store.ts";
import { type Issue, validateRules } from "./targeting/validate.ts";

/** Gives rules without an id a fresh one. */
export function withRuleIds(rules: readonly Rule[]): Rule[] {
  return rules.map((r) => (r.id ? r : create(RuleSchema, { ...r, id: randomUUID().slice(0, 8) })));
}

/** A flag of the project by key (NOT_FOUND otherwise), locked for update when asked. */
export async function findFlag(trx: Trx | FlagsDeps["db"], projectId: string, key: string, lock = false): Promise<FlagRow> {
  let q = trx.selectFrom("flags").selectAll().where("project_id", "=", projectId).where("key", "=", key);
  if (lock) q = q.forUpdate();
  const row = await q.executeTakeFirst();
  if (!row) throw notFound(`flag "${key}"`);
  return row;
}

/** The keys of the project's segments. */
export async function segmentKeys(trx: Trx, projectId: string): Promise<Set<string>> {
  const rows = await trx.selectFrom("segments").select("key").where("project_id", "=", projectId).execute();
  return new Set(rows.map((r) => r.key));
}

/** Issues of one environment's configuration against a flag's variants and the project's segments. */
export function environmentIssues(
  variants: readonly Variant[],
  defaultVariant: string,
  rules: readonly Rule[],
  segments: ReadonlySet<string>,
  prefix = "",
): Issue[] {
  const names = new Set(variants.map((v) => v.key));
  const issues: Issue[] = [];
  if (defaultVariant && !names.has(defaultVariant)) {
    issues.push({ path: `${prefix}default_variant`, message: `unknown variant "${defaultVariant}"; variants are ${[...names].join(", ")}` });
  }
  issues.push(...validateRules(rules, { variants: names, segments }, `${prefix}rules`));
  return issues;
}

/** FAILED_PRECONDITION when an environment of the flag still uses a variant `variants` lacks. */
export async function assertVariantsUnused(trx: Trx, flag: FlagRow, variants: readonly Variant[]): Promise<void> {
  const segments = await segmentKeys(trx, flag.project_id);
  const envRows = await trx.selectFrom("flag_environments").selectAll().where("flag_id", "=", flag.id).execute();
  for (const e of envRows) {
    const issues = environmentIssues(variants, e.default_variant, rulesFromRow(e.rules), segments);
    const gone = issues.find((i) => /unknown variant|not a variant/.test(i.message));
    if (gone)
      throw failedPrecondition(
        `variants: environment ${e.environment_id} still uses a removed variant (${gone.path}: ${gone.message}); change its targeting first`,
      );
  }
}

/** A flag's configuration in one environment, as written. */
export interface EnvironmentConfig {
  enabled: boolean;
  defaultVariant: string;
  rules: readonly Rule[];
  /** Omitted: keep the stored metadata ({} for a new row). */
  metadata?: StoredMetadata;
}

/** Inserts or replaces a flag's configuration in an environment, one version up; returns the row. */
export async function upsertEnvironment(
  trx: Trx,
  flag: FlagRow,
  env: EnvironmentRef,
  before: { version: string } | undefined,
  cfg: EnvironmentConfig,
): Promise<FlagEnvironmentRow> {
  const values = {
    enabled: cfg.enabled,
    default_variant: cfg.defaultVariant,
    rules: rulesToJson(cfg.rules),
    ...(cfg.metadata ? { metadata: JSON.stringify(cfg.metadata) } : {}),
    version: (before ? BigInt(before.version) : 0n) + 1n,
    updated_at: sql<Date>`now()` as unknown as Date,
  };
  if (before) {
    return trx
      .updateTable("flag_environments")
      .set(values)
      .where("flag_id", "=", flag.id)
      .where("environment_id", "=", env.environmentId)
      .returningAll()
      .executeTakeFirstOrThrow();
  }
  return trx
    .insertInto("flag_environments")
    .values({ ...values, flag_id: flag.id, environment_id: env.environmentId, organization_id: env.organizationId, project_id: env.projectId })
    .returningAll()
    .executeTakeFirstOrThrow();
}
