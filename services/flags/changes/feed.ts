/**
 * The flags service's domain events (VANE_DOMAIN, `<prefix>.flags.>`) as one feed per process:
 * a single ordered JetStream consumer — never one per client stream — decodes each event into a
 * vane.flags.v1.Change, keeps the most recent ones in a bounded window (so a reconnecting stream
 * gets what it missed), and fans each one out to the streams following its project. Positions
 * are the events' stream sequences, identical on every replica, so a client may resume on any.
 * At start the window is filled with the stream's most recent events.
 */
import { create, fromBinary } from "@bufbuild/protobuf";
import { DeliverPolicy, type JsMsg } from "@nats-io/jetstream";
import { type Change, ChangeKind, ChangeSchema } from "#gen/vane/flags/v1/change_service_pb.js";
import { ConfigChangedSchema, FlagChangedSchema, SegmentChangedSchema } from "#gen/vane/flags/v1/events_pb.js";
import type { Bus } from "#lib/bus/bus.ts";
import type { Logger } from "#lib/process/logger.ts";

/** Options for {@link createChangeFeed}. */
export interface ChangeFeedOptions {
  /** The domain stream (VANE_DOMAIN). */
  stream: string;
  /** Domain subject prefix ("vane.domain"): the feed reads `<prefix>.flags.>`. */
  subjectPrefix: string;
  /** Changes kept for resuming streams, across projects (default 10,000). */
  capacity?: number;
  logger: Logger;
  /** Pause before consuming again after a failure (default 1 s). */
  retryMs?: number;
}

/** What a stream receives. */
export interface ChangeQueue {
  /**
   * The changes since the last call ([] when `waitMs` passed without any) and the feed's position
   * at that moment (every change of the project up to it has been handed out); undefined once
   * closed.
   */
  next(waitMs: number): Promise<{ changes: Change[]; position: number } | undefined>;
  close(): void;
}

/** The feed. */
export interface ChangeFeed {
  /** Caught up with the stream as it was at start: resuming can be answered exactly. */
  readonly ready: boolean;
  /** The sequence of the last event processed (0 before any). */
  readonly position: number;
  /** Follows a project's changes from now on; closes when `signal` aborts or the feed stops. */
  follow(projectId: string, signal: AbortSignal): ChangeQueue;
  /** The project's changes after `sequence`, if the window still holds everything since then. */
  since(projectId: string, sequence: number): { complete: boolean; changes: Change[] };
  /** Starts consuming on `bus`. */
  attach(bus: Bus): void;
  stop(): Promise<void>;
}

const flagKinds: Record<string, ChangeKind> = {
  create: ChangeKind.FLAG_CREATED,
  update: ChangeKind.FLAG_UPDATED,
  revert: ChangeKind.FLAG_UPDATED,
  archive: ChangeKind.FLAG_ARCHIVED,
  unarchive: ChangeKind.FLAG_UNARCHIVED,
};
const segmentKinds: Record<string, ChangeKind> = {
  create: ChangeKind.SEGMENT_CREATED,
  update: ChangeKind.SEGMENT_UPDATED,
  delete: ChangeKind.SEGMENT_DELETED,
};

/** A domain event as a Change of its project; undefined for subjects the feed does not know. */
export function changeOf(subject: string, data: Uint8Array, sequence: number, prefix: string): { projectId: string; change: Change } | undefined {
  const seq = BigInt(sequence);
  switch (subject) {
    case `${prefix}.flags.config_changed`: {
      const e = fromBinary(ConfigChangedSchema, data);
      return {
        projectId: e.projectId,
        change: create(ChangeSchema, {
          sequence: seq,
          kind: ChangeKind.CONFIG_CHANGED,
          environmentId: e.environmentId,
          configVersion: e.version,
          changedFlagKeys: e.changedFlagKeys,
          auditEntryId: e.auditId,
          action: e.action,
          actor: e.actor,
          actorKind: e.actorKind,
          commitTime: e.commitTime,
        }),
      };
    }
    case `${prefix}.flags.flag_changed`: {
      const e = fromBinary(FlagChangedSchema, data);
      return {
        projectId: e.projectId,
        change: create(ChangeSchema, {
          sequence: seq,
          kind: flagKinds[e.action] ?? ChangeKind.FLAG_UPDATED,
          flagKey: e.flagKey,
          version: e.version,
          auditEntryId: e.auditId,
          action: `flag.${e.action}`,
          actor: e.actor,
          actorKind: e.actorKind,
          commitTime: e.commitTime,
        }),
      };
    }
    case `${prefix}.flags.segment_changed`: {
      const e = fromBinary(SegmentChangedSchema, data);
      return {
        projectId: e.projectId,
        change: create(ChangeSchema, {
          sequence: seq,
          kind: segmentKinds[e.action] ?? ChangeKind.SEGMENT_UPDATED,
          segmentKey: e.segmentKey,
          version: e.version,
          auditEntryId: e.auditId,
          action: `segment.${e.action}`,
          actor: e.actor,
          actorKind: e.actorKind,
          commitTime: e.commitTime,
        }),
      };
    }
    default:
      return undefined;
  }
}

/** Creates the feed; nothing is consumed until {@link ChangeFeed.attach}. */
export function createChangeFeed(opts: ChangeFeedOptions): ChangeFeed {
  const log = opts.logger.child({ component: "change-feed", stream: opts.stream });
  const capacity = opts.capacity ?? 10_000;
  const filter = `${opts.subjectPrefix}.flags.>`;
  // The window: the most recent changes in sequence order; `floor` is the first sequence from
  // which it holds every change (older ones were evicted or predate the start).
  const window: { projectId: string; change: Change }[] = [];
  let floor = Number.POSITIVE_INFINITY;
  let position = 0;
  let ready = false;
  let stopped = false;
  const followers = new Map<string, Set<(c: Change | undefined) => void>>();
  let loop: Promise<void> | undefined;
  let messages: { close(): Promise<void | Error> } | undefined;
  let wake: (() => void) | undefined;

  const markReady = () => {
    if (ready) return;
    ready = true;
    log.info({ position, held: window.length }, "change feed caught up");
  };

  const handle = (m: JsMsg) => {
    if (m.seq <= position) return;
    position = m.seq;
    try {
      const decoded = changeOf(m.subject, m.data, m.seq, opts.subjectPrefix);
      if (decoded) {
        window.push(decoded);
        if (window.length > capacity) floor = Number(window.shift()!.change.sequence) + 1;
        for (const f of followers.get(decoded.projectId) ?? []) f(decoded.change);
      }
    } catch (err) {
      log.warn({ err, subject: m.subject, seq: m.seq }, "undecodable domain event skipped");
    }
    if (m.info.pending === 0) markReady();
  };

  const consumeOnce = async (bus: Bus) => {
    let start = position + 1;
    if (position === 0) {
      // First start: the most recent `capacity` events (about: other subjects share the stream).
      const { state } = await bus.jsm.streams.info(opts.stream);
      start = Math.max(state.first_seq, state.last_seq - capacity + 1, 1);
      floor = start;
    }
    // One filter subject (filter_subject): servers before 2.10 know no other form.
    const consumer = await bus.js.consumers.get(opts.stream, { filter_subjects: filter, deliver_policy: DeliverPolicy.StartSequence, opt_start_seq: start });
    const it = await consumer.consume();
    messages = it;
    // stop() may have run while the consumer was being set up, with nothing yet to close. The
    // iterator ends once read (close() settles only then), so fall through to the loop below.
    try {
      if (stopped) void it.close().catch(() => undefined);
      else if (!ready) {
        // Nothing to catch up with (no message will say pending 0): the consumer says so.
        const info = await consumer.info();
        if (info.num_pending === 0 && info.delivered.stream_seq <= position) markReady();
      }
      for await (const m of it) {
        handle(m);
        if (stopped) break;
      }
    } finally {
      // Unsubscribes at once even when the iterator is never read again (an error above).
      void it.close().catch(() => undefined);
    }
  };

  const run = async (bus: Bus) => {
    while (!stopped) {
      try {
        await consumeOnce(bus);
      } catch (err) {
        if (!stopped) log.warn({ err }, "change feed consumer failed; retrying");
      }
      messages = undefined;
      if (stopped) break;
      await new Promise<void>((resolve) => {
        const t = setTimeout(resolve, opts.retryMs ?? 1000);
        wake = () => (clearTimeout(t), resolve());
      });
      wake = undefined;
    }
  };

  return {
    get ready() {
      return ready;
    },
    get position() {
      return position;
    },
    follow(projectId, signal) {
      let pending: Change[] = [];
      let closed = false;
      let notify: (() => void) | undefined;
      const listener = (c: Change | undefined) => {
        if (c === undefined) closed = true;
        else pending.push(c);
        notify?.();
      };
      let set = followers.get(projectId);
      if (!set) followers.set(projectId, (set = new Set()));
      set.add(listener);
      const close = () => {
        closed = true;
        const s = followers.get(projectId);
        s?.delete(listener);
        if (s?.size === 0) followers.delete(projectId);
        signal.removeEventListener("abort", onAbort);
        notify?.();
      };
      const onAbort = () => close();
      signal.addEventListener("abort", onAbort, { once: true });
      if (stopped || signal.aborted) close();
      return {
        async next(waitMs) {
          if (pending.length === 0 && !closed) {
            await new Promise<void>((resolve) => {
              const t = setTimeout(resolve, waitMs);
              notify = () => (clearTimeout(t), resolve());
            });
            notify = undefined;
          }
          if (closed) return undefined;
          const changes = pending;
          pending = [];
          return { changes, position };
        },
        close,
      };
    },
    since(projectId, sequence) {
      if (sequence + 1 < floor && sequence < position) return { complete: false, changes: [] };
      return { complete: true, changes: window.filter((e) => e.projectId === projectId && Number(e.change.sequence) > sequence).map((e) => e.change) };
    },
    attach(bus) {
      if (loop || stopped) return;
      loop = run(bus);
    },
    async stop() {
      stopped = true;
      wake?.();
      // Not awaited: close() settles only once the loop has read the iterator to its end.
      void messages?.close().catch(() => undefined);
      await loop;
      for (const set of followers.values()) for (const f of [...set]) f(undefined);
      followers.clear();
    },
  };
}
