/**
 * The version of a stored snapshot value, read from top-level fields only: an envelope's version
 * without decompressing it, a bare EnvironmentSnapshot's with its nested messages (flags, their
 * targeting) skipped as bytes, never decoded, so a value the decoder would refuse (too deep,
 * corrupt) cannot stop the publisher. Undefined when unreadable.
 */
import { BinaryReader, WireType } from "@bufbuild/protobuf/wire";
import { EnvironmentSnapshotSchema } from "#gen/vane/flags/v1/snapshot_pb.js";
import { parseEnvelope } from "#lib/bus/snapshots.ts";

const VERSION_FIELD = EnvironmentSnapshotSchema.field.version.number;

export function snapshotVersion(bytes: Uint8Array): bigint | undefined {
  try {
    const envelope = parseEnvelope(bytes);
    if (envelope) return envelope.version;
    const reader = new BinaryReader(bytes);
    let version = 0n;
    while (reader.pos < reader.len) {
      const [field, wireType] = reader.tag();
      if (field === VERSION_FIELD && wireType === WireType.Varint) version = BigInt(reader.int64());
      else if (wireType === WireType.StartGroup || wireType === WireType.EndGroup) return undefined;
      else reader.skip(wireType, field);
    }
    return version;
  } catch {
    return undefined;
  }
}
