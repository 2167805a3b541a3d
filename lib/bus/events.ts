/**
 * The events contract on VANE_EVENTS, in one place: subjects
 * `<prefix>.<environment id>.<kind>` (the collector publishes `track`, evaluators `exposure`,
 * analytics consumes both), the envelope (`vane.events.v1.EventEnvelope`) and how a consumer reads
 * them back. The stream itself is declared in streams.ts.
 */
import { fromBinary } from "@bufbuild/protobuf";
import { type EventEnvelope, EventEnvelopeSchema } from "#gen/vane/events/v1/events_pb.js";

/** What an event on VANE_EVENTS records. */
export type EventKind = "track" | "exposure";

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

/** Ids of organizations, projects and environments are UUIDs. */
export const isUuid = (s: string): boolean => UUID.test(s);

/** The subject of an event: `<prefix>.<environment id>.<kind>` (a subject token cannot hold `.`, `*`, `>` or blanks). */
export function eventSubject(prefix: string, environmentId: string, kind: EventKind): string {
  const token = environmentId === "" ? "_" : environmentId.replace(/[.*>\s]/g, "_");
  return `${prefix}.${token}.${kind}`;
}

/** The environment id a subject names, or "" when it names none. */
export function environmentOfSubject(subject: string): string {
  return subject.split(".").at(-2) ?? "";
}

/** The envelope of a message, or undefined when it does not decode. */
export function decodeEnvelope(data: Uint8Array): EventEnvelope | undefined {
  try {
    return fromBinary(EventEnvelopeSchema, data);
  } catch {
    return undefined;
  }
}
