/**
 * vane.flags.v1.SegmentService: a project's reusable audiences. A segment is part of every
 * environment's snapshot (as a flagd `$evaluators` entry), so each change gives every environment
 * of the project a new config version.
 */
import { randomUUID } from "node:crypto";
import { create } from "@bufbuild/protobuf";
import type { ServiceImpl } from "@connectrpc/connect";
import { sql } from "kysely";
import {
  CreateSegmentResponseSchema,
  DeleteSegmentResponseSchema,
  GetSegmentResponseSchema,
  ListSegmentsResponseSchema,
  SegmentService,
  UpdateSegmentResponseSchema,
} from "#gen/vane/flags/v1/segment_service_pb.js";
import { Role } from "#lib/auth/auth.ts";
import { failedPrecondition, notFound } from "#lib/process/errors.ts";
import { expectVersion, type FlagsDeps, inProject, mutate } from "./access.ts";
import { auditJson, conditionsToJson, toSegment } from "./convert.ts";
import type { SegmentRow } from "./schema.ts";
import { segmentUsage } from "./segment-usage.ts";
import { enqueueSegmentChanged } from "./changes/events.ts";
import { appendAudit, commitEnvironments, type Trx } from "./store.ts";
import { throwIssues, validateConditions } from "./targeting/validate.ts";

async function findSegment(db: Trx | FlagsDeps["db"], projectId: string, key: string, lock = false): Promise<SegmentRow> {
  let q = db.selectFrom("segments").selectAll().where("project_id", "=", projectId).where("key", "=", key);
  if (lock) q = q.forUpdate();
  const row = await q.executeTakeFirst();
  if (!row) throw notFound(`segment "${key}"`);
  return row;
}

/** Keys of the flags whose targeting (in any environment) uses the segment. */
async function flagsUsing(trx: Trx, projectId: string, key: string): Promise<string[]> {
  const pattern = JSON.stringify([{ conditions: [{ segment: { segmentKey: key } }] }]);
  const rows = await trx
    .selectFrom("flag_environments")
    .innerJoin("flags", "flags.id", "flag_environments.flag_id")
    .select("flags.key")
    .distinct()
    .where("flag_environments.project_id", "=", projectId)
    .where(sql<boolean>`flag_environments.rules @> ${pattern}::jsonb`)
    .orderBy("flags.key")
    .execute();
  return rows.map((r) => r.key);
}

/** Creates the SegmentService implementation. */
export function createSegmentService(deps: FlagsDeps): ServiceImpl<typeof SegmentService> {
  const { db, directory, targets } = deps;
  return {
    async createSegment(req, ctx) {
      const { p, caller, scope } = await inProject(deps, ctx, req.projectId, Role.EDITOR, "additive");
      throwIssues(validateConditions(req.conditions, { variants: new Set() }, "conditions"));
      const environments = await directory.environments(scope.projectId, caller);
      const row = await mutate(deps, scope.projectId, `a segment with key "${req.key}"`, ctx.signal, async (trx) => {
        const row = await trx
          .insertInto("segments")
          .values({
            id: randomUUID(),
            organization_id: scope.organizationId,
            project_id: scope.projectId,
            key: req.key,
            name: req.name,
            description: req.description,
            conditions: conditionsToJson(req.conditions),
            included_keys: JSON.stringify(req.includedKeys),
            excluded_keys: JSON.stringify(req.excludedKeys),
            version: 1,
          })
          .returningAll()
          .executeTakeFirstOrThrow();
        const auditId = await appendAudit(trx, scope, p, {
          segmentKey: req.key,
          action: "segment.create",
          reason: req.reason,
          before: null,
          after: auditJson.segment(toSegment(row)),
        });
        await enqueueSegmentChanged(trx, targets, scope, p, { segmentKey: req.key, action: "create", version: 1n, auditId });
        await commitEnvironments(trx, targets, scope, environments, { changedFlagKeys: [], auditId });
        return row;
      });
      return create(CreateSegmentResponseSchema, { segment: toSegment(row) });
    },

    async getSegment(req, ctx) {
      const { scope } = await inProject(deps, ctx, req.projectId, Role.VIEWER);
      const segment = toSegment(await findSegment(db, scope.projectId, req.key));
      const usage = await segmentUsage(db, scope.projectId, req.key);
      return create(GetSegmentResponseSchema, { segment, usedBy: usage.get(req.key) ?? [] });
    },

    async listSegments(req, ctx) {
      const { scope } = await inProject(deps, ctx, req.projectId, Role.VIEWER);
      const rows = await db.selectFrom("segments").selectAll().where("project_id", "=", scope.projectId).orderBy("key").execute();
      const usage = await segmentUsage(db, scope.projectId);
      return create(ListSegmentsResponseSchema, {
        segments: rows.map(toSegment),
        usedBy: Object.fromEntries([...usage].map(([key, references]) => [key, { references }])),
      });
    },

    async updateSegment(req, ctx) {
      const { p, caller, scope } = await inProject(deps, ctx, req.projectId, Role.EDITOR);
      throwIssues(validateConditions(req.conditions, { variants: new Set() }, "conditions"));
      const environments = await directory.environments(scope.projectId, caller);
      const row = await mutate(deps, scope.projectId, `segment "${req.key}"`, ctx.signal, async (trx) => {
        const before = await findSegment(trx, scope.projectId, req.key, true);
        expectVersion(`segment "${req.key}"`, BigInt(before.version), req.expectedVersion);
        const after = await trx
          .updateTable("segments")
          .set({
            name: req.name,
            description: req.description,
            conditions: conditionsToJson(req.conditions),
            included_keys: JSON.stringify(req.includedKeys),
            excluded_keys: JSON.stringify(req.excludedKeys),
            version: sql`version + 1`,
            updated_at: sql`now()`,
          })
          .where("id", "=", before.id)
          .returningAll()
          .executeTakeFirstOrThrow();
        const auditId = await appendAudit(trx, scope, p, {
          segmentKey: req.key,
          action: "segment.update",
          reason: req.reason,
          before: auditJson.segment(toSegment(before)),
          after: auditJson.segment(toSegment(after)),
        });
        await enqueueSegmentChanged(trx, targets, scope, p, { segmentKey: req.key, action: "update", version: BigInt(after.version), auditId });
        await commitEnvironments(trx, targets, scope, environments, { changedFlagKeys: await flagsUsing(trx, scope.projectId, req.key), auditId });
        return after;
      });
      return create(UpdateSegmentResponseSchema, { segment: toSegment(row) });
    },

    async deleteSegment(req, ctx) {
      const { p, caller, scope } = await inProject(deps, ctx, req.projectId, Role.EDITOR);
      const environments = await directory.environments(scope.projectId, caller);
      await mutate(deps, scope.projectId, `segment "${req.key}"`, ctx.signal, async (trx) => {
        const before = await findSegment(trx, scope.projectId, req.key, true);
        expectVersion(`segment "${req.key}"`, BigInt(before.version), req.expectedVersion);
        const users = await flagsUsing(trx, scope.projectId, req.key);
        if (users.length > 0)
          throw failedPrecondition(`segment "${req.key}" is used by ${users.map((k) => `"${k}"`).join(", ")}; remove it from their targeting first`);
        await trx.deleteFrom("segments").where("id", "=", before.id).execute();
        const auditId = await appendAudit(trx, scope, p, {
          segmentKey: req.key,
          action: "segment.delete",
          reason: req.reason,
          before: auditJson.segment(toSegment(before)),
          after: null,
        });
        await enqueueSegmentChanged(trx, targets, scope, p, { segmentKey: req.key, action: "delete", version: BigInt(before.version), auditId });
        await commitEnvironments(trx, targets, scope, environments, { changedFlagKeys: [], auditId });
      });
      return create(DeleteSegmentResponseSchema, {});
    },
  };
}
