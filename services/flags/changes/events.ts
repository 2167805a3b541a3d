/**
 * What the domain events say about who made a change: the actor and audit entry behind each
 * ConfigChanged, FlagChanged and SegmentChanged, read from the audit entry the same transaction
 * just appended (writes of a project are serialised by its lock, so a flag's latest entry is the
 * one of this change). SegmentChanged events are queued here too.
 */
import { randomUUID } from "node:crypto";
import { create, toBinary } from "@bufbuild/protobuf";
import { timestampFromDate } from "@bufbuild/protobuf/wkt";
import { SegmentChangedSchema } from "#gen/vane/flags/v1/events_pb.js";
import type { Principal } from "#lib/auth/auth.ts";
import { ApiKeyKind, kindClaim } from "#lib/auth/auth.ts";
import { type OutboxTargets, type Scope, traceHeaders, type Trx } from "../store.ts";

/** The actor and action of an audit entry. */
export interface AuditActor {
  auditId: bigint;
  actor: string;
  actorKind: string;
  action: string;
}

/** The audit entry `auditId` (0: none). */
export async function auditActor(trx: Trx, auditId: bigint): Promise<AuditActor | undefined> {
  if (auditId === 0n) return undefined;
  const row = await trx.selectFrom("audit_entries").select(["id", "actor", "actor_kind", "action"]).where("id", "=", String(auditId)).executeTakeFirst();
  return row && { auditId: BigInt(row.id), actor: row.actor, actorKind: row.actor_kind, action: row.action };
}

/** The latest audit entry of a flag in this transaction: the one recording the change being committed. */
export async function latestFlagAudit(trx: Trx, projectId: string, flagKey: string): Promise<AuditActor | undefined> {
  const row = await trx
    .selectFrom("audit_entries")
    .select(["id", "actor", "actor_kind", "action"])
    .where("project_id", "=", projectId)
    .where("flag_key", "=", flagKey)
    .orderBy("id", "desc")
    .limit(1)
    .executeTakeFirst();
  return row && { auditId: BigInt(row.id), actor: row.actor, actorKind: row.actor_kind, action: row.action };
}

/** The subject of SegmentChanged: beside FlagChanged's. */
export function segmentChangedSubject(targets: OutboxTargets): string {
  return targets.segmentChangedSubject ?? targets.flagChangedSubject.replace(/flag_changed$/, "segment_changed");
}

/** Queues a SegmentChanged event. */
export async function enqueueSegmentChanged(
  trx: Trx,
  targets: OutboxTargets,
  scope: Scope,
  p: Principal,
  change: { segmentKey: string; action: "create" | "update" | "delete"; version: bigint; auditId: bigint },
): Promise<void> {
  const eventId = randomUUID();
  const event = create(SegmentChangedSchema, {
    eventId,
    organizationId: scope.organizationId,
    projectId: scope.projectId,
    segmentKey: change.segmentKey,
    action: change.action,
    version: change.version,
    auditId: change.auditId,
    actor: p.subject,
    actorKind: p.keyKind === ApiKeyKind.UNSPECIFIED ? "user" : kindClaim(p.keyKind),
    commitTime: timestampFromDate(new Date()),
  });
  await trx
    .insertInto("outbox")
    .values({
      kind: "event",
      target: segmentChangedSubject(targets),
      ordering_key: `segment:${scope.projectId}/${change.segmentKey}`,
      payload: Buffer.from(toBinary(SegmentChangedSchema, event)),
      msg_id: eventId,
      headers: traceHeaders(),
    })
    .execute();
}
