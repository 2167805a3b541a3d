/**
 * vane.events.v1.EventService: validates each event on its own against the contract's rules,
 * stores the valid ones on VANE_EVENTS (message id = environment id + event id, so retries count
 * once and tenants never collide)
 * and returns only after JetStream has acknowledged them. An event goes to its partition's stream
 * (lib/bus/partitions.ts). Publishes are pipelined (one batch's events all in flight at once)
 * within a window of acknowledgements outstanding across all calls: when JetStream falls behind,
 * calls wait for room in order, and one that waits longer than the publish timeout is answered
 * UNAVAILABLE (retry with the same ids) rather than buffered without bound.
 */
import { randomUUID } from "node:crypto";
import { create, toBinary } from "@bufbuild/protobuf";
import { pathToString } from "@bufbuild/protobuf/reflect";
import { timestampNow } from "@bufbuild/protobuf/wkt";
import { createValidator } from "@bufbuild/protovalidate";
import { Code, ConnectError, type ServiceImpl } from "@connectrpc/connect";
import { EventEnvelopeSchema, type TrackedEvent, TrackedEventSchema } from "#gen/vane/events/v1/events_pb.js";
import { EventRejectionSchema, EventService, TrackResponseSchema } from "#gen/vane/events/v1/event_service_pb.js";
import { ApiKeyKind, requirePrincipal } from "#lib/auth/auth.ts";
import { publishEvent } from "#lib/bus/bus.ts";
import type { JetStreamClient } from "@nats-io/jetstream";
import type { RateLimiter } from "./rate-limit.ts";
import { permissionDenied, resourceExhausted } from "#lib/process/errors.ts";
import type { EventsLayout } from "#lib/bus/partitions.ts";
import type { PublishWindow } from "#lib/bus/publish-window.ts";

const MAX_PROPERTIES = 50;
const MAX_PROPERTIES_BYTES = 8192;
/**
 * Connect JSON decodes properties nested about 100 levels, but the stored envelope must decode in
 * analytics, whose binary decoder stops at 100 messages (about 49 levels of JSON).
 */
const MAX_PROPERTIES_DEPTH = 8;

/** Whether a JSON value nests deeper than `max` levels of objects and lists (no recursion). */
function nestsDeeperThan(value: unknown, max: number): boolean {
  const stack: [unknown, number][] = [[value, 0]];
  while (stack.length > 0) {
    const [v, depth] = stack.pop()!;
    if (v === null || typeof v !== "object") continue;
    if (depth + 1 > max) return true;
    for (const child of Object.values(v)) stack.push([child, depth + 1]);
  }
  return false;
}

/**
 * The JetStream message id of an event: event ids are chosen by clients, so two tenants may both
 * send "evt-1"; the stream's duplicate window must only drop a repeat from the same environment.
 */
export function streamMessageId(environmentId: string, eventId: string): string {
  return `${environmentId}:${eventId}`;
}

/** Dependencies of the EventService. */
export interface EventServiceDeps {
  js: () => JetStreamClient;
  /** Where each event goes (stream and subject, by partition). */
  layout: EventsLayout;
  limiter: RateLimiter;
  /** Acknowledgements outstanding, shared by all calls. */
  window: PublishWindow;
  publishTimeoutMs?: number;
}

/** Creates the EventService implementation. */
export function createEventService(deps: EventServiceDeps): ServiceImpl<typeof EventService> {
  const validator = createValidator();

  function check(ev: TrackedEvent): { field: string; message: string } | undefined {
    const r = validator.validate(TrackedEventSchema, ev);
    if (r.kind === "invalid") {
      const v = r.violations[0];
      return { field: pathToString(v.field) || "event", message: v.message };
    }
    if (r.kind === "error") return { field: "event", message: r.error.message };
    if (ev.properties) {
      if (Object.keys(ev.properties).length > MAX_PROPERTIES) return { field: "properties", message: `at most ${MAX_PROPERTIES} properties` };
      // The properties object is the first level.
      if (nestsDeeperThan(ev.properties, MAX_PROPERTIES_DEPTH + 1))
        return { field: "properties", message: `properties nest at most ${MAX_PROPERTIES_DEPTH} levels deep` };
      if (Buffer.byteLength(JSON.stringify(ev.properties)) > MAX_PROPERTIES_BYTES) {
        return { field: "properties", message: `at most ${MAX_PROPERTIES_BYTES} bytes of properties` };
      }
    }
    return undefined;
  }

  return {
    async track(req, ctx) {
      const p = requirePrincipal(ctx);
      if ((p.keyKind !== ApiKeyKind.SERVER && p.keyKind !== ApiKeyKind.CLIENT) || !p.environmentId) {
        throw permissionDenied("events are sent with a server or client key of an environment");
      }
      const wait = deps.limiter(p.subject, req.events.length);
      if (wait > 0) {
        ctx.responseHeader.set("retry-after", String(wait));
        throw resourceExhausted(`rate limit exceeded for this key; retry in ${wait} s`);
      }
      const rejected = [];
      const accepted: { index: number; id: string; ev: TrackedEvent }[] = [];
      // An id used twice in one batch would be stored once (JetStream drops the second): say so.
      const firstIndex = new Map<string, number>();
      for (const [index, ev] of req.events.entries()) {
        const problem = check(ev);
        const earlier = ev.eventId ? firstIndex.get(ev.eventId) : undefined;
        if (problem) rejected.push(create(EventRejectionSchema, { index, ...problem }));
        else if (earlier !== undefined)
          rejected.push(create(EventRejectionSchema, { index, field: "event_id", message: `the same event id as event ${earlier} of this batch` }));
        else {
          if (ev.eventId) firstIndex.set(ev.eventId, index);
          accepted.push({ index, id: ev.eventId || randomUUID(), ev });
        }
      }
      const receiveTime = timestampNow();
      const timeoutMs = deps.publishTimeoutMs ?? 5_000;
      if (accepted.length > 0 && !(await deps.window.acquire(accepted.length, timeoutMs))) {
        ctx.responseHeader.set("retry-after", "1");
        throw new ConnectError(
          `the events stream is acknowledging more slowly than events arrive: no room for ${accepted.length} events within ${timeoutMs} ms; retry the batch with the same event ids`,
          Code.Unavailable,
        );
      }
      const results = await Promise.allSettled(
        accepted.map(({ id, ev }) => {
          const route = deps.layout.route(p.environmentId, ev.unitKey, "track");
          const envelope = create(EventEnvelopeSchema, {
            eventId: id,
            organizationId: p.organizationId,
            projectId: p.projectId,
            environmentId: p.environmentId,
            receiveTime,
            credentialId: p.subject,
            payload: { case: "track", value: { ...ev, eventId: id } },
          });
          return publishEvent(deps.js(), route.subject, toBinary(EventEnvelopeSchema, envelope), {
            msgId: streamMessageId(p.environmentId, id),
            expectStream: route.stream,
            timeoutMs,
          });
        }),
      ).finally(() => deps.window.release(accepted.length));
      const failed = results.filter((r) => r.status === "rejected");
      if (failed.length) {
        // Some events may be stored already; a retry with the same ids is deduplicated.
        throw new ConnectError(
          `${failed.length} of ${accepted.length} events could not be stored right now; retry the batch with the same event ids`,
          Code.Unavailable,
          undefined,
          undefined,
          (failed[0] as PromiseRejectedResult).reason,
        );
      }
      return create(TrackResponseSchema, { accepted: accepted.length, acceptedEventIds: accepted.map((a) => a.id), rejected });
    },
  };
}
