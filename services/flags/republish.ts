/**
 * Republishing an environment: its configuration published again from the database, as a new
 * config version with no change. The new version is higher than anything the snapshot bucket
 * holds, so the publisher replaces the stored value whatever it is (stale, corrupt, missing); the
 * environment's parked outbox messages are superseded by it. Served as
 * FlagService.RepublishSnapshot and, for operators with database access, `npm run republish`.
 */
import { create } from "@bufbuild/protobuf";
import type { HandlerContext } from "@connectrpc/connect";
import { type RepublishSnapshotRequest, type RepublishSnapshotResponse, RepublishSnapshotResponseSchema } from "#gen/vane/flags/v1/flag_service_pb.js";
import type { Principal } from "#lib/auth/auth.ts";
import { type FlagsDeps, inEnvironment, mutate, Role } from "./access.ts";
import { appendAudit, commitEnvironments, type OutboxTargets, type Scope, type Trx } from "./store.ts";

/** Queues the environment's snapshot at a new version (inside the caller's transaction, under the project's lock). */
export async function republishEnvironment(
  trx: Trx,
  targets: OutboxTargets,
  env: Scope & { environmentId: string },
  p: Principal,
  reason: string,
): Promise<RepublishSnapshotResponse> {
  const superseded = await trx
    .updateTable("outbox")
    .set({ published_at: new Date(), last_error: "superseded by a republish" })
    .where("ordering_key", "=", env.environmentId)
    .where("published_at", "is", null)
    .where("parked_at", "is not", null)
    .executeTakeFirst();
  const auditId = await appendAudit(trx, env, p, { environmentId: env.environmentId, action: "environment.republish", reason, before: null, after: null });
  const versions = await commitEnvironments(trx, targets, env, [env.environmentId], { changedFlagKeys: [], auditId });
  return create(RepublishSnapshotResponseSchema, {
    configVersion: versions.get(env.environmentId)!,
    supersededParked: Number(superseded.numUpdatedRows),
    auditEntryId: auditId,
  });
}

/** FlagService.RepublishSnapshot: an admin of the environment (protection and key scope honoured). */
export function createRepublishSnapshot(deps: FlagsDeps) {
  return async (req: RepublishSnapshotRequest, ctx: HandlerContext): Promise<RepublishSnapshotResponse> => {
    const { p, env } = await inEnvironment(deps, ctx, req.environmentId, Role.ADMIN);
    return mutate(deps, env.projectId, `environment ${env.environmentId}`, ctx.signal, (trx) => republishEnvironment(trx, deps.targets, env, p, req.reason));
  };
}
