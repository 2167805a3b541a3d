/**
 * vane.flags.v1.ChangeService: a project's committed changes as a server stream for the console
 * and the CLI, from the process's change feed. Viewers of the project's organization only (a
 * foreign project is NOT_FOUND); other projects' changes never reach a stream. The first message
 * goes out at once (what was missed since `resume_after_sequence`, or a heartbeat), then changes
 * as they commit, and a heartbeat after every `heartbeatMs` without one, so proxies and browsers
 * keep the stream open.
 */
import { create } from "@bufbuild/protobuf";
import type { ServiceImpl } from "@connectrpc/connect";
import { type Change, type ChangeService, WatchChangesResponseSchema } from "#gen/vane/flags/v1/change_service_pb.js";
import { Role } from "#lib/auth/auth.ts";
import { type FlagsDeps, inProject } from "../access.ts";
import type { ChangeFeed } from "./feed.ts";
import { unavailable } from "#lib/process/errors.ts";

/** Heartbeat interval: below the idle timeouts of common proxies and load balancers (30–60 s). */
export const DEFAULT_CHANGE_HEARTBEAT_MS = 15_000;

/** Creates the ChangeService implementation. */
export function createChangeService(deps: FlagsDeps, feed: ChangeFeed, opts: { heartbeatMs?: number } = {}): ServiceImpl<typeof ChangeService> {
  const heartbeatMs = opts.heartbeatMs ?? DEFAULT_CHANGE_HEARTBEAT_MS;
  return {
    async *watchChanges(req, ctx) {
      const { scope } = await inProject(deps, ctx, req.projectId, Role.VIEWER);
      if (!feed.ready) throw unavailable("the change feed is still reading the domain events (or NATS is unreachable); retry shortly");
      // Follow first, then read the window: a change landing in between is in both, and the
      // sequence check below sends it once.
      const queue = feed.follow(scope.projectId, ctx.signal);
      try {
        let sent = Number(req.resumeAfterSequence ?? 0);
        const first = create(WatchChangesResponseSchema, {});
        if (req.resumeAfterSequence !== undefined) {
          const missed = feed.since(scope.projectId, sent);
          if (missed.complete) first.changes = missed.changes;
          else first.resyncRequired = true;
        }
        sent = Math.max(sent, feed.position, ...first.changes.map((c) => Number(c.sequence)));
        first.heartbeat = first.changes.length === 0;
        first.sequence = BigInt(sent);
        yield first;
        for (;;) {
          const next = await queue.next(heartbeatMs);
          if (next === undefined) return;
          const fresh: Change[] = next.changes.filter((c) => Number(c.sequence) > sent);
          if (fresh.length > 0) {
            sent = Number(fresh.at(-1)!.sequence);
            yield create(WatchChangesResponseSchema, { changes: fresh, sequence: BigInt(sent) });
          } else if (next.changes.length === 0) {
            // Every change of this project up to the feed's position has been sent.
            sent = Math.max(sent, next.position);
            yield create(WatchChangesResponseSchema, { heartbeat: true, sequence: BigInt(sent) });
          }
        }
      } finally {
        queue.close();
      }
    },
  };
}
