/**
 * Response messages whose wire encodings their producer prepared: shared, never mutated answers
 * (a cached bulk evaluation) built from encoded parts far faster than a fresh serialisation.
 * The fast paths (grpc-fast-path.ts, connect-fast-path.ts) write these bytes instead of
 * serialising the message; connect-node's handlers serialise as usual, to the same bytes.
 */
import { toBinary, toJsonString, type DescMessage, type Message } from "@bufbuild/protobuf";

/**
 * The message's protobuf binary and its JSON as Connect writes it (default JSON write options),
 * each built on first use and then kept by the producer.
 */
export interface PreparedEncodings {
  binary(): Uint8Array;
  json(): Uint8Array;
}

const prepared = new WeakMap<object, PreparedEncodings>();

/** Records the encodings of `message`, which must not change afterwards. */
export function prepareEncodings(message: object, encodings: PreparedEncodings): void {
  prepared.set(message, encodings);
}

/** The message's protobuf binary: prepared, else serialised now. */
export function binaryOf(schema: DescMessage, message: Message): Uint8Array {
  return prepared.get(message)?.binary() ?? toBinary(schema, message);
}

const utf8 = new TextEncoder();
/** The message's JSON bytes (Connect's default write options): prepared, else serialised now. */
export function jsonOf(schema: DescMessage, message: Message): Uint8Array {
  return prepared.get(message)?.json() ?? utf8.encode(toJsonString(schema, message));
}
