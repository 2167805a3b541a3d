/** audit (with --flag, --env, --since) and revert. */
import type { Command } from "commander";
import { timestampDate } from "@bufbuild/protobuf/wkt";
import { FlagService } from "#gen/vane/flags/v1/flag_service_pb.js";
import { UsageError, UserError } from "../errors.ts";
import { emit, parseFormat, printTable } from "../output.ts";
import { openSession, type GlobalOptions } from "../session.ts";
import { iso } from "../shapes.ts";

const UNITS: Record<string, number> = { s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000, w: 604_800_000 };

/** `30m`, `24h`, `7d` back from now, or an ISO date. */
function parseSince(text: string, now = Date.now()): Date {
  const m = /^(\d+)([smhdw])$/.exec(text);
  if (m) return new Date(now - Number(m[1]) * UNITS[m[2]]);
  const d = new Date(text);
  if (Number.isNaN(d.getTime())) throw new UsageError(`--since must be a duration (30m, 24h, 7d) or a date (2026-01-31), got "${text}"`);
  return d;
}

export async function audit(cmd: Command): Promise<void> {
  const opts = cmd.optsWithGlobals<GlobalOptions & { flag?: string; env?: string; since?: string; limit: string }>();
  const format = parseFormat(opts.output);
  const limit = Number(opts.limit);
  if (!Number.isInteger(limit) || limit < 1) throw new UsageError(`--limit must be a positive whole number, got "${opts.limit}"`);
  const since = opts.since ? parseSince(opts.since) : undefined;
  const session = await openSession(opts);
  const project = await session.project();
  const envs = await session.environments();
  const environmentId = opts.env ? (await session.environment(opts.env)).id : "";
  const api = session.client(FlagService);
  const entries = [];
  let pageToken = "";
  // Newest first: stop at the limit or at the first entry older than --since.
  outer: do {
    const page = await api.listAuditEntries({ projectId: project.id, flagKey: opts.flag ?? "", environmentId, pageSize: Math.min(200, limit), pageToken });
    for (const e of page.entries) {
      if (since && e.createTime && timestampDate(e.createTime) < since) break outer;
      entries.push(e);
      if (entries.length >= limit) break outer;
    }
    pageToken = page.nextPageToken;
  } while (pageToken);
  const envKey = (id: string) => envs.find((e) => e.id === id)?.key ?? id;
  const data = entries.map((e) => ({
    id: Number(e.id),
    time: iso(e.createTime),
    action: e.action,
    flag: e.flagKey || null,
    segment: e.segmentKey || null,
    environment: e.environmentId ? envKey(e.environmentId) : null,
    actor: e.actor,
    actorKind: e.actorKind,
    reason: e.reason,
  }));
  await emit(format, data, () =>
    printTable(
      ["id", "time", "action", "flag/segment", "env", "actor", "reason"],
      data.map((e) => [e.id, e.time?.replace(/\.\d+Z$/, "Z") ?? "-", e.action, e.flag ?? e.segment ?? "-", e.environment ?? "-", e.actor, e.reason || "-"]),
    ),
  );
}

export async function revert(cmd: Command): Promise<void> {
  const opts = cmd.optsWithGlobals<GlobalOptions & { reason: string }>();
  const format = parseFormat(opts.output);
  if (!/^\d+$/.test(cmd.args[0])) throw new UsageError(`ENTRY must be an audit entry id (a number, see vane audit), got "${cmd.args[0]}"`);
  const session = await openSession(opts);
  const project = await session.project();
  const api = session.client(FlagService);
  const id = BigInt(cmd.args[0]);
  // The version to revert over is the current one of what the entry changed.
  let entry;
  let pageToken = "";
  do {
    const page = await api.listAuditEntries({ projectId: project.id, pageSize: 200, pageToken });
    entry = page.entries.find((e) => e.id === id);
    // Newest first: once past the id, it is not on a later page.
    if (entry || page.entries.some((e) => e.id < id)) break;
    pageToken = page.nextPageToken;
  } while (pageToken);
  if (!entry) throw new UserError(`no audit entry ${id} in project ${project.key} (see vane audit)`);
  let expectedVersion = 0n;
  if (entry.flagKey) {
    const got = await api.getFlag({ projectId: project.id, key: entry.flagKey });
    expectedVersion = entry.environmentId ? (got.environments.find((e) => e.environmentId === entry.environmentId)?.version ?? 0n) : got.flag!.version;
  }
  const res = await api.revertAuditEntry({ projectId: project.id, auditEntryId: id, expectedVersion, reason: opts.reason });
  const data = { revertedEntry: Number(id), auditEntryId: Number(res.auditEntryId), flag: res.flag?.key ?? (entry.flagKey || null) };
  await emit(format, data, () => void process.stdout.write(`Reverted entry ${data.revertedEntry} (new audit entry ${data.auditEntryId})\n`));
}
