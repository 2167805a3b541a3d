/**
 * Storage of the flags service: reads, and the commit path every mutation takes — the change,
 * its audit entries, the new config version of each affected environment with its complete
 * snapshot, and the domain events, all in one transaction (the outbox relay publishes afterwards).
 */
import { randomUUID } from "node:crypto";
import { create, toBinary } from "@bufbuild/protobuf";
import { timestampFromDate } from "@bufbuild/protobuf/wkt";
import { propagation, context } from "@opentelemetry/api";
import { sql, type Kysely, type Transaction } from "kysely";
import { ConfigChangedSchema, FlagChangedSchema } from "#gen/vane/flags/v1/events_pb.js";
import { EnvironmentSnapshotSchema } from "#gen/vane/flags/v1/snapshot_pb.js";
import { ApiKeyKind, kindClaim, type Principal } from "#lib/auth/auth.ts";
import { compileFlagSet, FlagSetError } from "#engine";
import { invalidArgument } from "#lib/process/errors.ts";
import { notifyOutbox } from "#lib/data/outbox.ts";
import { encodeSnapshot } from "#lib/bus/snapshots.ts";
import { auditActor, latestFlagAudit } from "./changes/events.ts";
import { conditionsFromRow, rulesFromRow, typeFromName, variantsFromRow } from "./convert.ts";
import { type EnvironmentState, toFlagSet, toSnapshot } from "./environment-config.ts";
import type { FlagsDatabase, StoredMetadata } from "./schema.ts";
import { assertPublishable } from "./limits.ts";

export type Db = Kysely<FlagsDatabase>;
export type Trx = Transaction<FlagsDatabase>;

/** Where the outbox sends things; subjects and the NOTIFY channel. */
export interface OutboxTargets {
  /** e.g. "vane.domain.flags.config_changed". */
  configChangedSubject: string;
  /** e.g. "vane.domain.flags.flag_changed". */
  flagChangedSubject: string;
  /** e.g. "vane.domain.flags.segment_changed" (default: beside flagChangedSubject). */
  segmentChangedSubject?: string;
  channel: string;
  /** The largest snapshot that can be published (see limits.ts); a change beyond it is refused. */
  maxSnapshotBytes: number;
}

/** The project a mutation happens in. */
export interface Scope {
  organizationId: string;
  projectId: string;
}

/** Serialises every mutation of a project (and so every config version of its environments). */
export async function lockProject(trx: Trx, projectId: string): Promise<void> {
  await sql`select pg_advisory_xact_lock(hashtext(${`vane:flags:project:${projectId}`}))`.execute(trx);
}

/** One audit entry. */
export interface AuditInput {
  environmentId?: string;
  flagKey?: string;
  segmentKey?: string;
  action: string;
  reason: string;
  before: unknown;
  after: unknown;
}

/** Appends to the audit log (the only write path to it); returns the entry's id. */
export async function appendAudit(trx: Trx, scope: Scope, p: Principal, e: AuditInput): Promise<bigint> {
  const row = await trx
    .insertInto("audit_entries")
    .values({
      organization_id: scope.organizationId,
      project_id: scope.projectId,
      environment_id: e.environmentId ?? null,
      flag_key: e.flagKey ?? null,
      segment_key: e.segmentKey ?? null,
      action: e.action,
      actor: p.subject,
      actor_kind: p.keyKind === ApiKeyKind.UNSPECIFIED ? "user" : kindClaim(p.keyKind),
      reason: e.reason,
      before: JSON.stringify(e.before ?? null),
      after: JSON.stringify(e.after ?? null),
    })
    .returning("id")
    .executeTakeFirstOrThrow();
  return BigInt(row.id);
}

/** The committing request's trace context, for an outbox row's headers. */
export function traceHeaders(): string {
  const carrier: Record<string, string> = {};
  propagation.inject(context.active(), carrier);
  return JSON.stringify(carrier);
}

/** Queues a FlagChanged event. */
export async function enqueueFlagChanged(trx: Trx, targets: OutboxTargets, scope: Scope, flagKey: string, action: string, version: bigint): Promise<void> {
  const eventId = randomUUID();
  const audit = await latestFlagAudit(trx, scope.projectId, flagKey);
  const event = create(FlagChangedSchema, {
    eventId,
    organizationId: scope.organizationId,
    projectId: scope.projectId,
    flagKey,
    action,
    version,
    commitTime: timestampFromDate(new Date()),
    auditId: audit?.auditId ?? 0n,
    actor: audit?.actor ?? "",
    actorKind: audit?.actorKind ?? "",
  });
  await trx
    .insertInto("outbox")
    .values({
      kind: "event",
      target: targets.flagChangedSubject,
      ordering_key: `flag:${scope.projectId}/${flagKey}`,
      payload: Buffer.from(toBinary(FlagChangedSchema, event)),
      msg_id: eventId,
      headers: traceHeaders(),
    })
    .execute();
}

/** Loads one environment's state for a snapshot (inside the committing transaction). */
export async function loadEnvironmentState(db: Db | Trx, scope: Scope, environmentId: string, version: bigint, committedAt: Date): Promise<EnvironmentState> {
  const [flags, envRows, segments, setMetadata] = await Promise.all([
    db.selectFrom("flags").selectAll().where("project_id", "=", scope.projectId).where("archived", "=", false).orderBy("key").execute(),
    db.selectFrom("flag_environments").selectAll().where("project_id", "=", scope.projectId).where("environment_id", "=", environmentId).execute(),
    db.selectFrom("segments").selectAll().where("project_id", "=", scope.projectId).orderBy("key").execute(),
    environmentMetadata(db, environmentId),
  ]);
  const byFlag = new Map(envRows.map((r) => [r.flag_id, r]));
  return {
    organizationId: scope.organizationId,
    projectId: scope.projectId,
    environmentId,
    version,
    committedAt,
    flags: flags.map((f) => {
      const e = byFlag.get(f.id);
      return {
        key: f.key,
        type: typeFromName[f.type],
        variants: variantsFromRow(f.variants),
        clientVisible: f.client_visible,
        environment: e ? { enabled: e.enabled, defaultVariant: e.default_variant, rules: rulesFromRow(e.rules), metadata: e.metadata } : undefined,
      };
    }),
    segments: segments.map((s) => ({ key: s.key, conditions: conditionsFromRow(s.conditions), includedKeys: s.included_keys, excludedKeys: s.excluded_keys })),
    metadata: setMetadata,
  };
}

/** The flagd flag-set metadata imported into an environment ({} when none). */
export async function environmentMetadata(db: Db | Trx, environmentId: string): Promise<StoredMetadata> {
  const row = await db.selectFrom("environment_metadata").select("metadata").where("environment_id", "=", environmentId).executeTakeFirst();
  return row?.metadata ?? {};
}

/** The current config version of an environment (0 before its first change). */
export async function environmentVersion(db: Db | Trx, environmentId: string): Promise<bigint> {
  const row = await db.selectFrom("environment_versions").select("version").where("environment_id", "=", environmentId).executeTakeFirst();
  return row ? BigInt(row.version) : 0n;
}

/**
 * Gives each environment its next config version, compiles its complete configuration as a final
 * guard (INVALID_ARGUMENT if the engine refuses it), and queues its snapshot (KV key: the
 * environment id) and a ConfigChanged event. Environments are handled in id order.
 */
export async function commitEnvironments(
  trx: Trx,
  targets: OutboxTargets,
  scope: Scope,
  environmentIds: Iterable<string>,
  change: { changedFlagKeys: string[]; auditId: bigint },
): Promise<Map<string, bigint>> {
  const versions = new Map<string, bigint>();
  const committedAt = new Date();
  const audit = await auditActor(trx, change.auditId);
  for (const environmentId of [...new Set(environmentIds)].sort()) {
    const row = await trx
      .insertInto("environment_versions")
      .values({ environment_id: environmentId, organization_id: scope.organizationId, project_id: scope.projectId, version: 1 })
      .onConflict((oc) => oc.column("environment_id").doUpdateSet({ version: sql`environment_versions.version + 1`, updated_at: sql`now()` }))
      .returning("version")
      .executeTakeFirstOrThrow();
    const version = BigInt(row.version);
    versions.set(environmentId, version);
    const state = await loadEnvironmentState(trx, scope, environmentId, version, committedAt);
    try {
      compileFlagSet(toFlagSet(state, { extensions: true }).def, { extensions: true, strict: true });
    } catch (err) {
      if (err instanceof FlagSetError) throw invalidArgument(`the resulting configuration of environment ${environmentId} does not compile: ${err.message}`);
      throw err;
    }
    const snapshot = toBinary(EnvironmentSnapshotSchema, toSnapshot(state));
    assertPublishable(snapshot, environmentId, targets.maxSnapshotBytes);
    const eventId = randomUUID();
    const event = create(ConfigChangedSchema, {
      eventId,
      organizationId: scope.organizationId,
      projectId: scope.projectId,
      environmentId,
      version,
      changedFlagKeys: change.changedFlagKeys,
      auditId: change.auditId,
      commitTime: timestampFromDate(committedAt),
      actor: audit?.actor ?? "",
      actorKind: audit?.actorKind ?? "",
      action: audit?.action ?? "",
    });
    const headers = traceHeaders();
    await trx
      .insertInto("outbox")
      .values([
        // One key per environment: its snapshot, then the event announcing it.
        // Compressed here, so the outbox row is small too; the publisher chunks it if it must.
        {
          kind: "kv",
          target: environmentId,
          ordering_key: environmentId,
          payload: Buffer.from(encodeSnapshot(snapshot, { environmentId, version })),
          msg_id: String(version),
          headers,
        },
        {
          kind: "event",
          target: targets.configChangedSubject,
          ordering_key: environmentId,
          payload: Buffer.from(toBinary(ConfigChangedSchema, event)),
          msg_id: eventId,
          headers,
        },
      ])
      .execute();
  }
  await notifyOutbox(trx, targets.channel);
  return versions;
}
