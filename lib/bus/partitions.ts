/**
 * The partitioned events layout (`VANE_EVENTS_PARTITIONS` = P). With P = 1 every event goes to
 * the one events stream (`VANE_EVENTS`, `vane.events.<environment id>.<kind>`), as before. With
 * P > 1 an event goes to one of P streams `VANE_EVENTS_P<i>` (subjects
 * `vane.pevents.<i>.<environment id>.<kind>`), i chosen by a hash of its environment and unit key.
 * All events of one unit share a stream, so each keeps its order there, its message-id dedupe
 * (a retry carries the same unit) and its own consumer position; the streams are independent
 * (their own sequence and, in a cluster, their own leader), so analytics replicas apply them in
 * parallel. The unpartitioned stream stays declared and consumed, so what was published before
 * an upgrade still drains.
 */
import type { StreamSpec } from "#lib/bus/bus.ts";
import { eventSubject, type EventKind } from "#lib/bus/events.ts";
import { eventsStream, eventsSubjectPrefix } from "#lib/bus/streams.ts";
import type { EnvReader } from "#lib/process/config.ts";

/** The most partitions: each is a stream, a consumer and a Postgres connection in analytics. */
export const MAX_EVENT_PARTITIONS = 64;

/**
 * `VANE_EVENTS_PARTITIONS` (default 1): read by the collector, the evaluator and analytics alike;
 * it must be the same in all three (analytics consumes partitions 0..P-1 only).
 */
export function eventsPartitionsSetting(env: EnvReader): number {
  return env.int("VANE_EVENTS_PARTITIONS", 1, { min: 1, max: MAX_EVENT_PARTITIONS });
}

/** FNV-1a (32 bits) of the environment and unit key: stable across processes and releases. */
export function partitionOf(environmentId: string, unitKey: string, partitions: number): number {
  if (partitions <= 1) return 0;
  let h = 0x811c9dc5;
  const s = `${environmentId}\u0000${unitKey}`;
  for (let i = 0; i < s.length; i++) {
    h ^= s.charCodeAt(i);
    h = Math.imul(h, 0x01000193);
  }
  return (h >>> 0) % partitions;
}

/** The stream of partition `i` of the events stream `name` (P > 1). */
export function eventsPartitionStream(name: string, i: number, replicas = 1): StreamSpec {
  const base = eventsStream(name, replicas);
  // Not under the unpartitioned stream's subjects: two streams may not capture the same subject.
  const root = eventsSubjectPrefix(base).replace(/^vane\.events/, "vane.pevents");
  return { ...base, name: `${name}_P${i}`, subjects: [`${root}.${i}.>`], description: `tracked events and exposures, partition ${i}` };
}

/** Where events go: the streams to ensure, and an event's stream and subject. */
export interface EventsLayout {
  partitions: number;
  /** The unpartitioned stream (P = 1: the only one; P > 1: drained, no longer published to). */
  legacy: StreamSpec;
  /** P > 1: the partition streams, by index; P = 1: empty. */
  partitionStreams: StreamSpec[];
  /** The stream and subject of an event of `unitKey` in `environmentId`. */
  route(environmentId: string, unitKey: string, kind: EventKind): { stream: string; subject: string };
}

/** The layout of the events stream `name` in `partitions` partitions. */
export function eventsLayout(name = "VANE_EVENTS", partitions = 1, replicas = 1): EventsLayout {
  const legacy = eventsStream(name, replicas);
  const partitionStreams = partitions > 1 ? Array.from({ length: partitions }, (_, i) => eventsPartitionStream(name, i, replicas)) : [];
  const targets = (partitions > 1 ? partitionStreams : [legacy]).map((s) => ({ stream: s.name, prefix: eventsSubjectPrefix(s) }));
  return {
    partitions,
    legacy,
    partitionStreams,
    route(environmentId, unitKey, kind) {
      const t = targets[partitionOf(environmentId, unitKey, partitions)];
      return { stream: t.stream, subject: eventSubject(t.prefix, environmentId, kind) };
    },
  };
}
