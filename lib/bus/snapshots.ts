/**
 * The snapshot bucket's format, shared by its writer (flags) and its readers (evaluators). An
 * environment's key holds a SnapshotEnvelope ("VSE1" + protobuf): the gzip-compressed
 * EnvironmentSnapshot inline when it fits in one value, else a manifest of chunk values
 * (`<environment id>.chunk.<n>`, read at the revisions it names), so a snapshot is bounded by
 * the configured ceiling, not by NATS's max_payload. A bare EnvironmentSnapshot (the format
 * before) is still read: a bucket written by an older flags service keeps being served.
 */
import { createHash } from "node:crypto";
import { gunzipSync, gzipSync } from "node:zlib";
import { create, fromBinary, toBinary } from "@bufbuild/protobuf";
import type { KV } from "@nats-io/kv";
import {
  type EnvironmentSnapshot,
  EnvironmentSnapshotSchema,
  type SnapshotEnvelope,
  SnapshotChunkSchema,
  SnapshotChunksSchema,
  SnapshotCompression,
  SnapshotEnvelopeSchema,
} from "#gen/vane/flags/v1/snapshot_pb.js";

/** "VSE1": a first byte no EnvironmentSnapshot has (field 10, wire type 6 is invalid). */
const MAGIC = Uint8Array.of(0x56, 0x53, 0x45, 0x31);

/** True when a stored value is a SnapshotEnvelope rather than a bare EnvironmentSnapshot. */
export function isEnvelope(value: Uint8Array): boolean {
  return value.length >= MAGIC.length && MAGIC.every((b, i) => value[i] === b);
}

/** The envelope of a stored value, or undefined for a bare EnvironmentSnapshot. */
export function parseEnvelope(value: Uint8Array): SnapshotEnvelope | undefined {
  return isEnvelope(value) ? fromBinary(SnapshotEnvelopeSchema, value.subarray(MAGIC.length)) : undefined;
}

function seal(envelope: SnapshotEnvelope): Uint8Array {
  const body = toBinary(SnapshotEnvelopeSchema, envelope);
  const out = new Uint8Array(MAGIC.length + body.length);
  out.set(MAGIC);
  out.set(body, MAGIC.length);
  return out;
}

const sha256 = (parts: Uint8Array[]) => {
  const h = createHash("sha256");
  for (const p of parts) h.update(p);
  return new Uint8Array(h.digest());
};

/** An encoded snapshot as the flags service queues it: compressed, inline (the publisher chunks it if needed). */
export function encodeSnapshot(snapshot: Uint8Array, meta: { environmentId: string; version: bigint }): Uint8Array {
  const compressed = gzipSync(snapshot);
  return seal(
    create(SnapshotEnvelopeSchema, {
      environmentId: meta.environmentId,
      version: meta.version,
      compression: SnapshotCompression.GZIP,
      snapshotSize: BigInt(snapshot.length),
      sha256: sha256([compressed]),
      body: { case: "inline", value: compressed },
    }),
  );
}

/** The chunk keys of an environment: two tokens more, so a watch of `*` sees only environments. */
export const chunkKey = (key: string, n: number) => `${key}.chunk.${n}`;

/**
 * Writes a queued value under `key`: as it is when it fits in `maxValueBytes`, else its
 * compressed bytes as chunks first and then the manifest, with `previousSeq` as the
 * compare-and-set of the environment's key. Returns the key's new revision.
 */
export async function putSnapshot(kv: KV, key: string, value: Uint8Array, opts: { maxValueBytes: number; previousSeq: number }): Promise<number> {
  const envelope = value.length > opts.maxValueBytes ? parseEnvelope(value) : undefined;
  if (!envelope || envelope.body.case !== "inline") return kv.put(key, value, { previousSeq: opts.previousSeq });
  const bytes = envelope.body.value;
  // Room for the manifest's own fields besides the chunk list.
  const size = Math.max(1024, opts.maxValueBytes - 1024);
  const chunks = [];
  for (let n = 0, at = 0; at < bytes.length; n++, at += size) {
    const part = bytes.subarray(at, at + size);
    const revision = await kv.put(chunkKey(key, n), part);
    chunks.push(create(SnapshotChunkSchema, { key: chunkKey(key, n), revision: BigInt(revision), size: part.length }));
  }
  envelope.body = { case: "chunks", value: create(SnapshotChunksSchema, { chunks }) };
  return kv.put(key, seal(envelope), { previousSeq: opts.previousSeq });
}

/**
 * The encoded EnvironmentSnapshot of a stored value: a bare snapshot as it is, an envelope's
 * inline bytes or its chunks (read at their revisions) checked against the digest and
 * decompressed. Throws when a chunk is gone (later versions rewrote it more often than the
 * bucket's history keeps) or anything does not match.
 */
export async function readSnapshotBytes(kv: KV, value: Uint8Array): Promise<Uint8Array> {
  const envelope = parseEnvelope(value);
  if (!envelope) return value;
  let compressed: Uint8Array;
  if (envelope.body.case === "inline") compressed = envelope.body.value;
  else if (envelope.body.case === "chunks") {
    const parts: Uint8Array[] = [];
    for (const c of envelope.body.value.chunks) {
      const entry = await kv.get(c.key, { revision: Number(c.revision) });
      if (!entry || entry.value.length !== c.size)
        throw new Error(`snapshot chunk ${c.key} at revision ${c.revision} is gone (rewritten by later versions); a later version replaces this one`);
      parts.push(entry.value);
    }
    compressed = Buffer.concat(parts);
  } else throw new Error("snapshot envelope without a body");
  if (!Buffer.from(sha256([compressed])).equals(envelope.sha256)) throw new Error(`snapshot of version ${envelope.version}: digest mismatch`);
  const size = Number(envelope.snapshotSize);
  switch (envelope.compression) {
    case SnapshotCompression.NONE:
      return compressed;
    case SnapshotCompression.GZIP: {
      const out = gunzipSync(compressed, { maxOutputLength: Math.max(size, 1) });
      if (out.length !== size) throw new Error(`snapshot of version ${envelope.version}: ${out.length} bytes once decompressed, ${size} announced`);
      return out;
    }
    default:
      throw new Error(`snapshot of version ${envelope.version}: unknown compression ${envelope.compression}`);
  }
}

/** The EnvironmentSnapshot of a stored value, in any format (tests, tools). */
export async function decodeStoredSnapshot(kv: KV, value: Uint8Array): Promise<EnvironmentSnapshot> {
  return fromBinary(EnvironmentSnapshotSchema, await readSnapshotBytes(kv, value));
}
