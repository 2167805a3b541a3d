/**
 * The JetStream streams several services share, declared once so every service that ensures
 * them at start-up asks for the same configuration.
 */
import type { StreamSpec } from "#lib/bus/bus.ts";
import type { EnvReader } from "#lib/process/config.ts";

/**
 * `VANE_EVENTS_STREAM`: the events stream's name. The collector and the evaluator publish to it and
 * analytics consumes it, so all three read it here, alike.
 */
export function eventsStreamSetting(env: EnvReader): string {
  return env.string("VANE_EVENTS_STREAM", "VANE_EVENTS");
}

/** VANE_EVENTS: tracked events and exposures, `vane.events.<environment_id>.<kind>`. */
export function eventsStream(name = "VANE_EVENTS", replicas = 1): StreamSpec {
  return {
    name,
    subjects: [`${name === "VANE_EVENTS" ? "vane.events" : `vane.events_${name.toLowerCase()}`}.>`],
    // Long enough for analytics to catch up after an outage; dedupe covers client retries.
    maxAgeMs: 7 * 24 * 3600_000,
    duplicateWindowMs: 10 * 60_000,
    replicas,
    storage: "file",
    description: "tracked events and exposures",
  };
}

/** The subject prefix of an events stream (tests use their own stream and prefix). */
export function eventsSubjectPrefix(spec: StreamSpec): string {
  return spec.subjects[0].replace(/\.>$/, "");
}
