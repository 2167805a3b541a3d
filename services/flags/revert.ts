/**
 * FlagService.RevertAuditEntry: re-applies the state an audit entry recorded before its change, as
 * a new optimistic, audited change that reaches the snapshots through the outbox like any other.
 */
import { create, fromJson, type JsonValue, toJson } from "@bufbuild/protobuf";
import { ValueSchema } from "@bufbuild/protobuf/wkt";
import type { HandlerContext } from "@connectrpc/connect";
import { sql } from "kysely";
import { type RevertAuditEntryRequest, type RevertAuditEntryResponse, RevertAuditEntryResponseSchema } from "#gen/vane/flags/v1/flag_service_pb.js";
import { FlagEnvironmentSchema, FlagSchema } from "#gen/vane/flags/v1/flags_pb.js";
import { failedPrecondition, notFound } from "#lib/process/errors.ts";
import { environmentForChange, expectVersion, type FlagsDeps, inProject, mutate, requireProjectWide, Role } from "./access.ts";
import { auditJson, toFlag, toFlagEnvironment, variantsToJson } from "./convert.ts";
import { assertVariantsUnused, environmentIssues, findFlag, segmentKeys, upsertEnvironment } from "./flag-writes.ts";
import type { AuditEntryRow, StoredMetadata } from "./schema.ts";
import { appendAudit, commitEnvironments, enqueueFlagChanged } from "./store.ts";
import { validateVariants } from "./targeting/validate.ts";

/** Entries whose `before` is a whole Flag that can be written back. */
const FLAG_ACTIONS = new Set(["flag.update", "flag.archive", "flag.unarchive", "flag.revert"]);
/** Entries whose `before` is a FlagEnvironment (or null: never configured there). */
const ENVIRONMENT_ACTIONS = new Set(["flag.environment.update", "flag.environment.import", "flag.environment.revert"]);

/** Why an entry cannot be reverted, for FAILED_PRECONDITION. */
function notRevertible(e: AuditEntryRow): string {
  if (e.action === "flag.create") return `audit entry ${e.id} created flag "${e.flag_key}": there is no earlier state to restore; archive the flag instead`;
  if (e.segment_key)
    return `audit entry ${e.id} (${e.action}) changed segment "${e.segment_key}": only flag and flag-environment changes can be reverted; edit the segment with SegmentService`;
  return `audit entry ${e.id} (${e.action}) cannot be reverted: only flag and flag-environment changes can`;
}

/** Creates the RevertAuditEntry handler. */
export function createRevertAuditEntry(deps: FlagsDeps) {
  const { db, directory, targets } = deps;
  return async function revertAuditEntry(req: RevertAuditEntryRequest, ctx: HandlerContext): Promise<RevertAuditEntryResponse> {
    const { p, caller, scope } = await inProject(deps, ctx, req.projectId, Role.EDITOR, "per-environment");
    const entry = await db
      .selectFrom("audit_entries")
      .selectAll()
      .where("project_id", "=", scope.projectId)
      .where("id", "=", String(req.auditEntryId))
      .executeTakeFirst();
    if (!entry) throw notFound(`audit entry ${req.auditEntryId}`);
    const reason = `revert of audit entry ${entry.id}${req.reason ? `: ${req.reason}` : ""}`;
    const key = entry.flag_key ?? "";

    if (ENVIRONMENT_ACTIONS.has(entry.action) && entry.environment_id && key) {
      // Through identity: the environment must still exist, be visible to the caller, and be
      // theirs to change (an admin key's own environment; the admin role if protected).
      const env = await environmentForChange(deps, caller, entry.environment_id);
      const before = entry.before === null ? undefined : fromJson(FlagEnvironmentSchema, entry.before as JsonValue);
      return mutate(deps, scope.projectId, `flag "${key}"`, ctx.signal, async (trx) => {
        const flag = await findFlag(trx, scope.projectId, key);
        if (flag.archived) throw failedPrecondition(`flag "${key}" is archived; unarchive it before reverting its configuration`);
        const current = await trx
          .selectFrom("flag_environments")
          .selectAll()
          .where("flag_id", "=", flag.id)
          .where("environment_id", "=", env.environmentId)
          .forUpdate()
          .executeTakeFirst();
        expectVersion(`flag "${key}" in environment ${env.environmentId}`, current ? BigInt(current.version) : 0n, req.expectedVersion);
        // No earlier configuration means the flag was off there, with no default and no rules.
        const cfg = {
          enabled: before?.enabled ?? false,
          defaultVariant: before?.defaultVariant ?? "",
          rules: before?.rules ?? [],
          metadata: Object.fromEntries(Object.entries(before?.metadata ?? {}).map(([k, v]) => [k, toJson(ValueSchema, v)])) as StoredMetadata,
        };
        const issues = environmentIssues(toFlag(flag).variants, cfg.defaultVariant, cfg.rules, await segmentKeys(trx, scope.projectId));
        if (issues.length > 0) {
          throw failedPrecondition(
            `the state before audit entry ${entry.id} no longer applies: ${issues[0].path}: ${issues[0].message}; change the flag or segments back first, or edit the environment`,
          );
        }
        const after = await upsertEnvironment(trx, flag, env, current, cfg);
        const auditEntryId = await appendAudit(trx, env, p, {
          environmentId: env.environmentId,
          flagKey: key,
          action: "flag.environment.revert",
          reason,
          before: current ? auditJson.environment(toFlagEnvironment(key, current)) : null,
          after: auditJson.environment(toFlagEnvironment(key, after)),
        });
        const versions = await commitEnvironments(trx, targets, env, [env.environmentId], { changedFlagKeys: [key], auditId: auditEntryId });
        return create(RevertAuditEntryResponseSchema, {
          flag: toFlag(flag),
          environment: toFlagEnvironment(key, after),
          configVersion: versions.get(env.environmentId)!,
          auditEntryId,
        });
      });
    }

    if (FLAG_ACTIONS.has(entry.action) && key && entry.before !== null) {
      requireProjectWide(p, "revert a flag's definition");
      const before = fromJson(FlagSchema, entry.before as JsonValue);
      const environments = await directory.environments(scope.projectId, caller);
      return mutate(deps, scope.projectId, `flag "${key}"`, ctx.signal, async (trx) => {
        const current = await findFlag(trx, scope.projectId, key, true);
        expectVersion(`flag "${key}"`, BigInt(current.version), req.expectedVersion);
        // Undoing an edit must not unarchive as a side effect (archive entries are what toggle it).
        if (current.archived && !before.archived && entry.action !== "flag.archive") {
          throw failedPrecondition(`flag "${key}" is archived; unarchive it before reverting audit entry ${entry.id}`);
        }
        const issues = validateVariants(toFlag(current).type, before.variants);
        if (issues.length > 0) throw failedPrecondition(`the state before audit entry ${entry.id} no longer applies: ${issues[0].path}: ${issues[0].message}`);
        await assertVariantsUnused(trx, current, before.variants);
        const after = await trx
          .updateTable("flags")
          .set({
            name: before.name,
            description: before.description,
            tags: JSON.stringify(before.tags),
            owner: before.owner,
            variants: variantsToJson(before.variants),
            client_visible: before.clientVisible,
            archived: before.archived,
            version: sql`version + 1`,
            updated_at: sql`now()`,
          })
          .where("id", "=", current.id)
          .returningAll()
          .executeTakeFirstOrThrow();
        const auditEntryId = await appendAudit(trx, scope, p, {
          flagKey: key,
          action: "flag.revert",
          reason,
          before: auditJson.flag(toFlag(current)),
          after: auditJson.flag(toFlag(after)),
        });
        await enqueueFlagChanged(trx, targets, scope, key, "revert", BigInt(after.version));
        await commitEnvironments(trx, targets, scope, environments, { changedFlagKeys: [key], auditId: auditEntryId });
        return create(RevertAuditEntryResponseSchema, { flag: toFlag(after), auditEntryId });
      });
    }

    throw failedPrecondition(notRevertible(entry));
  };
}
