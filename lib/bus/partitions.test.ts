import { describe, expect, it } from "vitest";
import { environmentOfSubject } from "./events.ts";
import { eventsLayout, partitionOf } from "./partitions.ts";

describe("the partitioned events layout", () => {
  const env = "0b7c6f0e-8c1f-4d2a-9a55-0f6f4a1e2b3c";

  it("with one partition, routes every event to the one stream as before", () => {
    const layout = eventsLayout("VANE_EVENTS", 1);
    expect(layout.partitionStreams).toEqual([]);
    expect(layout.route(env, "u1", "track")).toEqual({ stream: "VANE_EVENTS", subject: `vane.events.${env}.track` });
  });

  it("keeps a unit's events in one partition stream whose subjects the unpartitioned stream does not capture", () => {
    const layout = eventsLayout("VANE_EVENTS", 4);
    expect(layout.partitionStreams.map((s) => [s.name, s.subjects])).toEqual([0, 1, 2, 3].map((i) => [`VANE_EVENTS_P${i}`, [`vane.pevents.${i}.>`]]));
    const track = layout.route(env, "user-42", "track");
    const exposure = layout.route(env, "user-42", "exposure");
    expect(exposure.stream).toBe(track.stream);
    const i = partitionOf(env, "user-42", 4);
    expect(track).toEqual({ stream: `VANE_EVENTS_P${i}`, subject: `vane.pevents.${i}.${env}.track` });
    expect(environmentOfSubject(track.subject)).toBe(env);
    // A test stream of another name gets its own, also disjoint subjects.
    expect(eventsLayout("EVENTS_X", 2).partitionStreams[1].subjects).toEqual(["vane.pevents_events_x.1.>"]);
  });

  it("hashes stably (publishers of different releases must agree) and spreads units evenly", () => {
    // FNV-1a of "<environment>\0<unit>" is 286311636: pinned, as changing it would move units between partitions.
    expect(partitionOf(env, "user-42", 1000)).toBe(636);
    expect(partitionOf(env, "user-42", 7)).toBe(286311636 % 7);
    const counts = [0, 0, 0, 0];
    for (let u = 0; u < 40_000; u++) counts[partitionOf(env, `user-${u}`, 4)]++;
    for (const c of counts) expect(Math.abs(c - 10_000)).toBeLessThan(500);
  });
});
