/**
 * watch: the project's change stream (ChangeService.WatchChanges) until Ctrl-C. A dropped
 * connection or a server restart does not end it: it reconnects with backoff and resumes after
 * the last position it saw, so no change is missed (or, past the server's window, says so).
 */
import { Code, ConnectError } from "@connectrpc/connect";
import type { Command } from "commander";
import { type Change, ChangeKind, ChangeService } from "#gen/vane/flags/v1/change_service_pb.js";
import { UsageError } from "../errors.ts";
import { paint, parseFormat } from "../output.ts";
import { openSession, type GlobalOptions } from "../session.ts";
import { enumName, iso } from "../shapes.ts";

/** Errors a new connection cannot fix: the command stops with them. */
const FATAL = new Set([Code.InvalidArgument, Code.NotFound, Code.PermissionDenied, Code.FailedPrecondition]);
const MAX_BACKOFF_MS = 30_000;

export async function watch(cmd: Command): Promise<void> {
  const opts = cmd.optsWithGlobals<GlobalOptions & { since?: string }>();
  const format = parseFormat(opts.output);
  if (opts.since !== undefined && !/^\d+$/.test(opts.since)) throw new UsageError(`--since must be a sequence number, got "${opts.since}"`);
  let session = await openSession(opts);
  const project = await session.project();
  const envs = new Map((await session.environments()).map((e) => [e.id, e.key]));
  let after = opts.since === undefined ? undefined : BigInt(opts.since);
  process.stderr.write(`Watching project ${project.key}${after === undefined ? "" : ` after sequence ${after}`} (Ctrl-C stops)\n`);
  for (let attempt = 0; ; attempt++) {
    try {
      const stream = session.client(ChangeService).watchChanges({ projectId: project.id, resumeAfterSequence: after });
      for await (const res of stream) {
        if (attempt > 0) {
          process.stderr.write(`${paint("green", "reconnected", process.stderr)}\n`);
          attempt = 0;
        }
        if (res.resyncRequired) process.stderr.write(`${paint("yellow", "some changes were missed: re-read the project", process.stderr)}\n`);
        for (const c of res.changes) print(c, format, envs);
        if (res.sequence > 0n) after = res.sequence;
      }
      // The server ended the stream (a restart, a drain): follow it again.
      throw new ConnectError("the server ended the stream", Code.Unavailable);
    } catch (err) {
      const e = ConnectError.from(err);
      if (FATAL.has(e.code)) throw err;
      // A token that expired during a long watch: sign in again with the profile's key.
      if (e.code === Code.Unauthenticated) session = await openSession(opts);
      const delay = Math.min(MAX_BACKOFF_MS, 500 * 2 ** Math.min(attempt, 6)) * (0.75 + Math.random() / 2);
      const from = after === undefined ? "" : `, resuming after sequence ${after}`;
      process.stderr.write(`${paint("yellow", `connection lost (${e.rawMessage}); reconnecting in ${(delay / 1000).toFixed(1)} s${from}`, process.stderr)}\n`);
      await new Promise((resolve) => setTimeout(resolve, delay));
    }
  }
}

function print(c: Change, format: string, envs: Map<string, string>) {
  const data = {
    sequence: Number(c.sequence),
    time: iso(c.commitTime),
    kind: enumName(ChangeKind, c.kind),
    flagKey: c.flagKey || null,
    segmentKey: c.segmentKey || null,
    environment: c.environmentId ? (envs.get(c.environmentId) ?? c.environmentId) : null,
    actor: c.actor,
    auditEntryId: Number(c.auditEntryId) || null,
  };
  if (format === "table")
    process.stdout.write(
      `${paint("dim", data.time ?? "")}  ${data.kind.padEnd(17)} ${data.flagKey ?? data.segmentKey ?? ""}${data.environment ? ` in ${data.environment}` : ""}  ${paint("dim", data.actor)}\n`,
    );
  // One JSON object per line, so `vane watch -o json | jq` streams.
  else process.stdout.write(`${JSON.stringify(data)}\n`);
}
