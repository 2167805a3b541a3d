/** Bulk answers in memory: prepared encodings equal protobuf-es's, and the cache's bounds. */
import { describe, expect, it } from "vitest";
import { toBinary, toJsonString } from "@bufbuild/protobuf";
import { EvaluateAllResponseSchema } from "#gen/vane/evaluation/v1/evaluation_service_pb.js";
import { binaryOf, jsonOf } from "#lib/server/prepared-encodings.ts";
import { buildBulkAnswer } from "../bulk-answer.ts";
import { createBulkCache } from "../bulk-cache.ts";
import { createSnapshotStore, versionFromSnapshot, type EnvironmentState } from "../snapshots/store.ts";
import { fixture, snapshotOf } from "./harness.ts";

function state(version: number): EnvironmentState {
  const store = createSnapshotStore();
  store.apply(versionFromSnapshot(snapshotOf(fixture, { environmentId: "e", version })));
  return store.get("e")!;
}
const s1 = state(1);
const answer = (etag: string, context: Record<string, string> = { targetingKey: "u" }, s = s1) => buildBulkAnswer(s, etag, s.flags.evaluateAll(context));

describe("bulk answers", () => {
  it("prepares exactly the bytes protobuf-es writes, binary and JSON, full and not modified", () => {
    for (const context of [{ targetingKey: "u" }, { targetingKey: "ü-2", plan: "staff", country: "de" }] as Record<string, string>[]) {
      const a = answer('"t1"', context);
      expect(a.response.evaluations).toHaveLength(Object.keys(fixture.flags).length);
      for (const m of [a.response, a.notModified]) {
        expect(Buffer.from(binaryOf(EvaluateAllResponseSchema, m))).toEqual(Buffer.from(toBinary(EvaluateAllResponseSchema, m)));
        expect(new TextDecoder().decode(jsonOf(EvaluateAllResponseSchema, m))).toBe(toJsonString(EvaluateAllResponseSchema, m));
      }
      expect(a.notModified).toMatchObject({ notModified: true, etag: '"t1"', evaluations: [], version: 1n, environmentId: "e" });
      // The experiment's own assignment (not the staff rule) is an exposure.
      expect(a.experiments.map(([k]) => k)).toEqual(context.plan === "staff" ? [] : ["experiment"]);
      expect([...a.reasons.values()].reduce((x, y) => x + y)).toBe(Object.keys(fixture.flags).length);
    }
  });
});

describe("bulk cache", () => {
  it("keeps the most recently used answers within its entries", () => {
    const cache = createBulkCache({ maxEntries: 2, maxBytes: 1 << 30 });
    cache.add(answer('"a"'));
    cache.add(answer('"b"'));
    expect(cache.get("e", '"a"')).toBeDefined(); // a is now the most recent
    cache.add(answer('"c"'));
    expect(cache.get("e", '"b"')).toBeUndefined();
    expect(cache.get("e", '"a"')?.etag).toBe('"a"');
    expect(cache.get("e", '"c"')?.etag).toBe('"c"');
    expect(cache.get("other-env", '"c"')).toBeUndefined();
    expect(cache.size().entries).toBe(2);
  });

  it("keeps within its bytes, and takes no answer larger than them", () => {
    const one = answer('"a"');
    const cache = createBulkCache({ maxEntries: 100, maxBytes: Math.floor(one.bytes * 2.5) });
    cache.add(one);
    cache.add(answer('"b"'));
    cache.add(answer('"c"'));
    expect(cache.size()).toEqual({ entries: 2, bytes: 2 * one.bytes });
    expect(cache.get("e", '"a"')).toBeUndefined();
    const tiny = createBulkCache({ maxEntries: 100, maxBytes: one.bytes - 1 });
    tiny.add(one);
    expect(tiny.size()).toEqual({ entries: 0, bytes: 0 });
    const off = createBulkCache({ maxEntries: 0, maxBytes: 1 << 30 });
    off.add(one);
    expect(off.get("e", '"a"')).toBeUndefined();
  });

  it("replaces an answer under the same tag without counting it twice", () => {
    const cache = createBulkCache({ maxEntries: 10, maxBytes: 1 << 30 });
    const a = answer('"a"');
    cache.add(a);
    cache.add(answer('"a"'));
    expect(cache.size()).toEqual({ entries: 1, bytes: a.bytes });
  });
});
