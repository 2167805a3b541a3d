import { create, toBinary } from "@bufbuild/protobuf";
import { describe, expect, it } from "vitest";
import { EventEnvelopeSchema } from "#gen/vane/events/v1/events_pb.js";
import { decodeEnvelope, environmentOfSubject, eventSubject, isUuid } from "./events.ts";

describe("the events contract", () => {
  it("builds subjects a NATS token can hold, and reads the environment back", () => {
    const env = "0b7c6f0e-8c1f-4d2a-9a55-0f6f4a1e2b3c";
    expect(eventSubject("vane.events", env, "track")).toBe(`vane.events.${env}.track`);
    expect(environmentOfSubject(eventSubject("vane.events", env, "exposure"))).toBe(env);
    expect(eventSubject("p", "a.b *>c", "exposure")).toBe("p.a_b___c.exposure");
    expect(eventSubject("p", "", "track")).toBe("p._.track");
  });

  it("decodes envelopes, and answers undefined for what is not one", () => {
    const bytes = toBinary(EventEnvelopeSchema, create(EventEnvelopeSchema, { eventId: "e1", environmentId: "x" }));
    expect(decodeEnvelope(bytes)?.eventId).toBe("e1");
    expect(decodeEnvelope(new Uint8Array([0x0a, 0xff, 0xff]))).toBeUndefined();
  });

  it("knows a UUID", () => {
    expect(isUuid("0b7c6f0e-8c1f-4d2a-9a55-0f6f4a1e2b3c")).toBe(true);
    expect(isUuid("------------------------------------")).toBe(false);
  });
});
