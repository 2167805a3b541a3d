/**
 * The fan-out of configuration changes to vane.evaluation.v1 Watch streams. Streams of one
 * environment with the same context (and the same kind of key: client-visible flags only, with
 * exposures or without) form a group: a change is evaluated once per group, not once per stream,
 * and each message is built once per group and shared by its streams (the gRPC fast path then
 * encodes it once: lib/server/shared-frames.ts). A change re-evaluates only the flags it touched
 * (and those that read the clock), so a stream asking for deltas gets exactly the evaluations
 * that changed for its context, and nothing when none did. The fan-out runs in slices with a
 * turn of the event loop between them, so thousands of streams never hold the loop at once.
 */
import { create } from "@bufbuild/protobuf";
import { timestampFromMs } from "@bufbuild/protobuf/wkt";
import { ConnectError } from "@connectrpc/connect";
import { WatchResponseSchema, type Evaluation, type WatchResponse } from "#gen/vane/evaluation/v1/evaluation_service_pb.js";
import type { EvaluationContext } from "#engine";
import { notFound } from "#lib/process/errors.ts";
import { shareMessage } from "#lib/server/shared-frames.ts";
import { toEvaluation, type FlagEvaluator } from "../evaluate.ts";
import type { EnvironmentChange, EnvironmentState, SnapshotStore } from "../snapshots/store.ts";
import { coalesce } from "./coalesce.ts";
import { contextKey } from "./context-key.ts";
import { sameEvaluation, volatileKeys } from "./evaluation-diff.ts";

/** What a stream watches: the environment, and what its key may see. */
export interface WatchTarget {
  environmentId: string;
  /** Client keys: client-visible flags only. */
  clientOnly: boolean;
  /** Whether evaluations are exposures (server and client keys). */
  exposures: boolean;
}

/** Options for {@link createWatchFanOut}. */
export interface WatchFanOutOptions {
  store: SnapshotStore;
  evaluator: FlagEvaluator;
  /** Streams woken per slice of the fan-out (default 64). */
  sliceStreams?: number;
  /** Time spent per slice before the event loop gets a turn (ms, default 4). */
  sliceMs?: number;
}

/** Fan-out statistics, for benchmarks and tests. */
export interface WatchFanOutStats {
  groups: number;
  streams: number;
  /** Group evaluations done on changes (once per group and change). */
  groupUpdates: number;
  /** Turns of the event loop the fan-outs gave up between slices. */
  slices: number;
}

/** The fan-out. */
export interface WatchFanOut {
  /**
   * A stream's messages: the full state first, then on each change either only what changed
   * (`deltas`; nothing when nothing did) or the full state again (every version). Fails with
   * NOT_FOUND when the environment is deleted; ends when `signal` aborts.
   */
  watch(target: WatchTarget, context: EvaluationContext, deltas: boolean, signal: AbortSignal): AsyncGenerator<WatchResponse>;
  stats(): WatchFanOutStats;
  stop(): void;
}

interface Member {
  readonly deltas: boolean;
  /** The next message to send (later ones are coalesced into it). */
  pending: WatchResponse | undefined;
  failure: ConnectError | undefined;
  wake: (() => void) | undefined;
  closed: boolean;
}

interface Group {
  readonly key: string;
  readonly target: WatchTarget;
  readonly context: EvaluationContext;
  state: EnvironmentState;
  /** The sequence number of the change that produced `state` (0: before the fan-out started). */
  seq: number;
  /** Each visible flag's evaluation for this context at `state`. */
  readonly current: Map<string, Evaluation>;
  /** The full state at `state`, the first message of a stream that joins now (built on demand). */
  initial: WatchResponse | undefined;
  readonly members: Set<Member>;
}

interface Environment {
  readonly groups: Map<string, Group>;
  /** Changes not yet fanned out. */
  log: { seq: number; change: EnvironmentChange }[];
  running: boolean;
}

/** Creates the fan-out over the store's changes. */
export function createWatchFanOut(opts: WatchFanOutOptions): WatchFanOut {
  const { store, evaluator } = opts;
  const sliceStreams = opts.sliceStreams ?? 64;
  const sliceMs = opts.sliceMs ?? 4;
  const environments = new Map<string, Environment>();
  // Changes are numbered as the store makes them, so a group knows which changes it has not seen:
  // every state a group is built from has been announced (the store notifies synchronously).
  const seqOf = new WeakMap<EnvironmentState, number>();
  let seq = 0;
  let stopped = false;
  const stats = { groupUpdates: 0, slices: 0 };

  const unsubscribe = store.subscribe((change) => {
    const n = ++seq;
    if (change.current) seqOf.set(change.current, n);
    const env = environments.get(change.environmentId);
    if (!env) return;
    env.log.push({ seq: n, change });
    if (!env.running) void run(change.environmentId, env);
  });

  const run = async (environmentId: string, env: Environment) => {
    env.running = true;
    try {
      while (env.log.length > 0 && !stopped) {
        const log = env.log;
        env.log = [];
        await fanOut(env, log);
      }
    } finally {
      env.running = false;
      if (env.groups.size === 0 && environments.get(environmentId) === env) environments.delete(environmentId);
    }
  };

  const fanOut = async (env: Environment, log: Environment["log"]) => {
    const last = log[log.length - 1];
    const state = last.change.current;
    let sliceStart = performance.now();
    let woken = 0;
    // The streams woken in a slice write their messages when it yields, before the next one.
    const slice = async () => {
      stats.slices++;
      await new Promise((r) => setImmediate(r));
      sliceStart = performance.now();
      woken = 0;
    };
    for (const group of [...env.groups.values()]) {
      // Joined since (built from a state at least as new) or left meanwhile.
      if (group.seq >= last.seq || group.members.size === 0) continue;
      if (!state) {
        const gone = notFound("this environment (deleted meanwhile)");
        for (const m of group.members) fail(m, gone);
        env.groups.delete(group.key);
        continue;
      }
      const touched = new Set(volatileKeys(state));
      for (const { seq: n, change } of log) if (n > group.seq) for (const key of change.changedKeys) touched.add(key);
      let step: { changed: string[]; removed: string[] };
      try {
        step = advance(group, state, last.seq, touched);
      } catch (err) {
        // Never expected (the engine reports failures in its results); ends this group's streams, not the process.
        const failure = ConnectError.from(err);
        for (const m of group.members) fail(m, failure);
        env.groups.delete(group.key);
        continue;
      }
      let delta: WatchResponse | undefined;
      let full: WatchResponse | undefined;
      for (const m of [...group.members]) {
        if (m.deltas) {
          if (step.changed.length === 0 && step.removed.length === 0) continue;
          push(
            m,
            (delta ??= message(
              group,
              step.changed.map((k) => group.current.get(k)!),
              step.changed,
              step.removed,
              true,
            )),
          );
        } else {
          push(m, (full ??= message(group, evaluationsOf(group), step.changed, step.removed, false)));
        }
        if (++woken >= sliceStreams || performance.now() - sliceStart >= sliceMs) await slice();
      }
      if (performance.now() - sliceStart >= sliceMs) await slice();
    }
  };

  // Re-evaluates the touched flags for the group's context; the rest cannot have changed.
  const advance = (group: Group, state: EnvironmentState, n: number, touched: ReadonlySet<string>) => {
    stats.groupUpdates++;
    const changed: string[] = [];
    const removed: string[] = [];
    for (const key of touched) {
      const visible = state.flags.has(key) && (!group.target.clientOnly || state.clientVisible.has(key));
      const before = group.current.get(key);
      if (!visible) {
        if (before !== undefined) {
          group.current.delete(key);
          removed.push(key);
        }
        continue;
      }
      const e = toEvaluation(key, evaluator.evaluate(state, key, group.context, undefined, "vane_watch", group.target.exposures));
      group.current.set(key, e);
      if (!sameEvaluation(before, e)) changed.push(key);
    }
    group.state = state;
    group.seq = n;
    group.initial = undefined;
    return { changed, removed };
  };

  const join = (target: WatchTarget, context: EvaluationContext, member: Member): Group => {
    const state = store.get(target.environmentId);
    if (!state) throw notFound("this environment (deleted meanwhile)");
    let env = environments.get(target.environmentId);
    if (!env) environments.set(target.environmentId, (env = { groups: new Map(), log: [], running: false }));
    const key = `${target.clientOnly ? "c" : "s"}${target.exposures ? "x" : "-"}${contextKey(context)}`;
    let group = env.groups.get(key);
    if (!group) {
      const current = new Map<string, Evaluation>();
      for (const [k, res] of evaluator.evaluateAll(state, context, target.clientOnly, "vane_watch", target.exposures)) current.set(k, toEvaluation(k, res));
      group = { key, target, context, state, seq: seqOf.get(state) ?? 0, current, initial: undefined, members: new Set() };
      env.groups.set(key, group);
    }
    group.members.add(member);
    return group;
  };

  const leave = (group: Group, member: Member) => {
    group.members.delete(member);
    if (group.members.size > 0) return;
    const env = environments.get(group.target.environmentId);
    if (env?.groups.get(group.key) === group) env.groups.delete(group.key);
    if (env && env.groups.size === 0 && !env.running) environments.delete(group.target.environmentId);
  };

  return {
    async *watch(target, context, deltas, signal) {
      const member: Member = { deltas, pending: undefined, failure: undefined, wake: undefined, closed: false };
      const group = join(target, context, member);
      const onAbort = () => member.wake?.();
      signal.addEventListener("abort", onAbort, { once: true });
      try {
        yield (group.initial ??= initialMessage(group));
        for (;;) {
          while (member.pending === undefined && member.failure === undefined && !signal.aborted) await new Promise<void>((r) => (member.wake = r));
          member.wake = undefined;
          if (signal.aborted) return;
          if (member.failure) throw member.failure;
          const next = member.pending!;
          member.pending = undefined;
          yield next;
        }
      } finally {
        member.closed = true;
        signal.removeEventListener("abort", onAbort);
        leave(group, member);
      }
    },
    stats() {
      let groups = 0;
      let streams = 0;
      for (const env of environments.values()) {
        groups += env.groups.size;
        for (const g of env.groups.values()) streams += g.members.size;
      }
      return { groups, streams, ...stats };
    },
    stop() {
      stopped = true;
      unsubscribe();
    },
  };
}

function push(member: Member, m: WatchResponse): void {
  if (member.closed) return;
  member.pending = member.pending === undefined ? m : coalesce(member.pending, m);
  member.wake?.();
}

function fail(member: Member, err: ConnectError): void {
  member.failure = err;
  member.wake?.();
}

/** The group's evaluations in the environment's order. */
function evaluationsOf(group: Group): Evaluation[] {
  const out: Evaluation[] = [];
  for (const key of group.state.flags.keys) {
    const e = group.current.get(key);
    if (e !== undefined) out.push(e);
  }
  return out;
}

function initialMessage(group: Group): WatchResponse {
  const evaluations = evaluationsOf(group);
  return message(
    group,
    evaluations,
    evaluations.map((e) => e.flagKey),
    [],
    false,
  );
}

function message(group: Group, evaluations: Evaluation[], changed: string[], removed: string[], delta: boolean): WatchResponse {
  return shareMessage(
    create(WatchResponseSchema, {
      evaluations,
      version: BigInt(group.state.version),
      changedFlagKeys: changed,
      removedFlagKeys: removed,
      configTime: timestampFromMs(group.state.commitTimeMs),
      delta,
    }),
  );
}
