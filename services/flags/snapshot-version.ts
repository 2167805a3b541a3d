/**
 * The version of an encoded EnvironmentSnapshot, read from its top-level fields only: nested
 * messages (flags, their targeting) are skipped as bytes, never decoded, so a value the decoder
 * would refuse (too deep, corrupt) cannot stop the publisher. Undefined when unreadable.
 */
import { BinaryReader, WireType } from "@bufbuild/protobuf/wire";
import { EnvironmentSnapshotSchema } from "#gen/vane/flags/v1/snapshot_pb.js";

const VERSION_FIELD = EnvironmentSnapshotSchema.field.version.number;

export function snapshotVersion(bytes: Uint8Array): bigint | undefined {
  try {
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
