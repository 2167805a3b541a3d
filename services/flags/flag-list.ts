/**
 * What ListFlags adds for a console listing thousands of flags: filters by state in an
 * environment and by archived state, the total matching the filters, and each listed flag's
 * state per environment at a glance. The state filters are `exists` lookups on
 * flag_environments' primary key (flag_id, environment_id), so keyset paging over the
 * (project_id, key) index stays a range scan.
 */
import { create } from "@bufbuild/protobuf";
import { timestampFromDate } from "@bufbuild/protobuf/wkt";
import { sql, type SelectQueryBuilder } from "kysely";
import {
  type FlagEnvironmentSummaries,
  FlagEnvironmentSummariesSchema,
  FlagEnvironmentSummarySchema,
  type ListFlagsRequest,
} from "#gen/vane/flags/v1/flag_service_pb.js";
import { invalidArgument } from "#lib/process/errors.ts";
import type { Caller } from "#lib/auth/auth.ts";
import type { ProjectDirectory } from "#lib/clients/identity-directory.ts";
import type { FlagRow, FlagsDatabase } from "./schema.ts";
import type { Db } from "./store.ts";

type FlagQuery = SelectQueryBuilder<FlagsDatabase, "flags", FlagRow>;

/** The environments the state filters name, checked to be the project's (foreign ids: NOT_FOUND through the directory). */
export async function stateFilterEnvironments(req: ListFlagsRequest, projectId: string, directory: ProjectDirectory, caller: Caller): Promise<void> {
  for (const [field, id] of [
    ["enabled_in_environment", req.enabledInEnvironment],
    ["disabled_in_environment", req.disabledInEnvironment],
  ] as const) {
    if (!id) continue;
    const env = await directory.environment(id, caller);
    if (env.projectId !== projectId) throw invalidArgument(`${field}: environment ${id} is not in project ${projectId}`);
  }
}

/** Adds the state and archived filters. */
export function withStateFilters(q: FlagQuery, req: ListFlagsRequest): FlagQuery {
  const enabledIn = (environmentId: string) =>
    sql<boolean>`exists (select 1 from flag_environments fe where fe.flag_id = flags.id and fe.environment_id = ${environmentId} and fe.enabled)`;
  if (req.onlyArchived) q = q.where("archived", "=", true);
  if (req.enabledInEnvironment) q = q.where(enabledIn(req.enabledInEnvironment));
  if (req.disabledInEnvironment) q = q.where(sql<boolean>`not ${enabledIn(req.disabledInEnvironment)}`);
  return q;
}

/** How many flags the filtered query matches, over all pages. */
export async function countFlags(q: FlagQuery): Promise<number> {
  const row = await q
    .clearSelect()
    .select(sql<string>`count(*)`.as("n"))
    .executeTakeFirstOrThrow();
  return Number(row.n);
}

/** Each flag's configured environments, by flag key. */
export async function environmentSummaries(db: Db, flags: readonly FlagRow[]): Promise<Record<string, FlagEnvironmentSummaries>> {
  const out: Record<string, FlagEnvironmentSummaries> = {};
  if (flags.length === 0) return out;
  const keyOf = new Map(flags.map((f) => [f.id, f.key]));
  for (const f of flags) out[f.key] = create(FlagEnvironmentSummariesSchema);
  const rows = await db
    .selectFrom("flag_environments")
    .select(["flag_id", "environment_id", "enabled", "default_variant", "version", "updated_at", sql<number>`jsonb_array_length(rules)`.as("rule_count")])
    .where("flag_id", "in", [...keyOf.keys()])
    .orderBy("flag_id")
    .orderBy("environment_id")
    .execute();
  for (const r of rows) {
    out[keyOf.get(r.flag_id)!].environments.push(
      create(FlagEnvironmentSummarySchema, {
        environmentId: r.environment_id,
        enabled: r.enabled,
        defaultVariant: r.default_variant,
        ruleCount: Number(r.rule_count),
        version: BigInt(r.version),
        updateTime: timestampFromDate(new Date(r.updated_at)),
      }),
    );
  }
  return out;
}
