/**
 * The bucket's formats during a rolling upgrade: a bare EnvironmentSnapshot written by an older
 * flags service is served as before; the envelope (inline or chunked) is served; a manifest whose
 * chunk is gone is refused and the previous version kept; chunk values are never taken for
 * environments; and an older evaluator, which decodes values as bare snapshots, fails on an
 * envelope (keeping what it holds) rather than serving an empty environment.
 */
import { create, fromBinary, toBinary } from "@bufbuild/protobuf";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { EnvironmentSnapshotSchema, SnapshotChunkSchema, SnapshotChunksSchema, SnapshotEnvelopeSchema } from "#gen/vane/flags/v1/snapshot_pb.js";
import { chunkKey, encodeSnapshot, parseEnvelope, putSnapshot } from "#lib/bus/snapshots.ts";
import { eventually, fixture, snapshotOf, startEvaluator, type EvaluatorHarness } from "./harness.ts";

const ENV = "env-formats";
let h: EvaluatorHarness;
beforeAll(async () => {
  h = await startEvaluator({ flagd: false });
});
afterAll(() => h?.close());

const encoded = (version: number) => toBinary(EnvironmentSnapshotSchema, snapshotOf(fixture, { environmentId: ENV, version }));
const versionHeld = () => h.module.store.get(ENV)?.version ?? 0;
const rejected = async () => {
  const text = await (await fetch(`${h.baseUrl}/metrics`)).text();
  const m = new RegExp(`^vane_evaluator_snapshots_rejected_total\\{[^}]*environment_id="${ENV}"[^}]*\\} ([0-9.e+-]+)$`, "m").exec(text);
  return m ? Number(m[1]) : undefined;
};
const revision = async () => (await h.kv!.get(ENV))?.revision ?? 0;

describe("snapshot formats", () => {
  it("serves a bare snapshot (the format before), then an inline envelope, then a chunked one", async () => {
    await h.put(snapshotOf(fixture, { environmentId: ENV, version: 1 }));
    await eventually(() => versionHeld() === 1, 10_000, "the bare snapshot served");

    await h.kv!.put(ENV, encodeSnapshot(encoded(2), { environmentId: ENV, version: 2n }));
    await eventually(() => versionHeld() === 2, 10_000, "the inline envelope served");

    // Chunks of 200 bytes: the fixture's compressed snapshot takes several.
    await putSnapshot(h.kv!, ENV, encodeSnapshot(encoded(3), { environmentId: ENV, version: 3n }), { maxValueBytes: 200, previousSeq: await revision() });
    const manifest = parseEnvelope((await h.kv!.get(ENV))!.value)!;
    expect(manifest.body.case).toBe("chunks");
    await eventually(() => versionHeld() === 3, 10_000, "the chunked envelope served");
    // The chunks' keys are not environments.
    expect(h.module.store.get(chunkKey(ENV, 0))).toBeUndefined();
    expect(h.module.store.size).toBe(1);
    expect(h.module.store.get(ENV)!.flags.evaluate("string-static", {}).value).toBe("#00f");
  });

  it("refuses a manifest whose chunk is gone and keeps serving the previous version", async () => {
    const envelope = encodeSnapshot(encoded(4), { environmentId: ENV, version: 4n });
    const broken = parseEnvelope(envelope)!;
    if (broken.body.case !== "inline") throw new Error("expected an inline envelope");
    // A manifest naming a revision that holds another key's value (as if the chunk had been rewritten away).
    const other = await h.kv!.put("unrelated.not.watched", new Uint8Array([1]));
    const chunk = create(SnapshotChunkSchema, { key: chunkKey(ENV, 0), revision: BigInt(other), size: broken.body.value.length });
    broken.body = { case: "chunks", value: create(SnapshotChunksSchema, { chunks: [chunk] }) };
    const before = (await rejected()) ?? 0;
    await h.kv!.put(ENV, Buffer.concat([envelope.subarray(0, 4), toBinary(SnapshotEnvelopeSchema, broken)]));
    await eventually(async () => ((await rejected()) ?? 0) > before, 10_000, "the broken manifest refused");
    expect(versionHeld()).toBe(3);
    // The next good version is served: the refusal was not fatal to the feed.
    await h.kv!.put(ENV, encodeSnapshot(encoded(5), { environmentId: ENV, version: 5n }));
    await eventually(() => versionHeld() === 5, 10_000, "the next good version served");
  });

  it("makes an older reader fail on an envelope instead of decoding an empty environment", () => {
    const envelope = encodeSnapshot(encoded(6), { environmentId: ENV, version: 6n });
    expect(() => fromBinary(EnvironmentSnapshotSchema, envelope)).toThrow();
    expect(() => fromBinary(EnvironmentSnapshotSchema, new Uint8Array(Buffer.from("\x1f\x8b\x08\x00")))).toThrow(); // a chunk (gzip) too
  });
});
