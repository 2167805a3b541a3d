/**
 * Requests that cannot be decoded are the caller's mistake: INVALID_ARGUMENT with a message
 * naming what is wrong — the field whose string is not UTF-8, or the type the bytes do not
 * encode — rather than Connect's INTERNAL "parse binary: …" (binary) or, for JSON, a body whose
 * invalid UTF-8 was silently replaced (so that a mangled field name made an empty request).
 */
import { isUtf8 } from "node:buffer";
import { ScalarType, type DescField, type DescMessage } from "@bufbuild/protobuf";
import { BinaryReader, WireType } from "@bufbuild/protobuf/wire";
import { Code, ConnectError, createContextKey } from "@connectrpc/connect";

/**
 * In a call's context values: the request's message bytes as received, when the server kept
 * them (binary requests of one message), to name the offending field of a decode failure.
 */
export const receivedRequestBytes = createContextKey<(() => Uint8Array | undefined) | undefined>(undefined, { description: "received request bytes" });

const PARSE_BINARY = "parse binary: ";

/** Connect's failure to decode a binary message: INTERNAL "parse binary: …". */
export function isBinaryParseFailure(err: ConnectError): boolean {
  return err.code === Code.Internal && err.rawMessage.startsWith(PARSE_BINARY);
}

/** Connect's INTERNAL "parse binary: …" for a request message, as INVALID_ARGUMENT naming what is wrong. */
export function fromBinaryParseFailure(desc: DescMessage, bytes: Uint8Array | undefined, err: ConnectError): ConnectError {
  return binaryDecodeError(desc, bytes, err.rawMessage.slice(PARSE_BINARY.length));
}

/**
 * Why `bytes` (when known) is not a binary `desc`: protobuf-es's `reason` in words a caller can
 * act on, with the path of the first string field that is not valid UTF-8 when there is one.
 */
export function describeBinaryDecodeFailure(desc: DescMessage, bytes: Uint8Array | undefined, reason: string): string {
  const field = bytes && invalidUtf8Field(desc, bytes, "", 0);
  if (field) return `${field}: not valid UTF-8 (protobuf strings must be UTF-8)`;
  if (/utf-?8/i.test(reason)) return `a string field of ${desc.typeName} is not valid UTF-8 (protobuf strings must be UTF-8)`;
  return `the request is not a valid ${desc.typeName} in protobuf binary (${reason}); check that the client uses this service's contract`;
}

/** A decode failure of a request's protobuf binary, as INVALID_ARGUMENT. */
export function binaryDecodeError(desc: DescMessage, bytes: Uint8Array | undefined, reason: string): ConnectError {
  return new ConnectError(describeBinaryDecodeFailure(desc, bytes, reason), Code.InvalidArgument);
}

/**
 * The text decoder Connect's JSON codec uses for requests: strict UTF-8, as JSON requires (RFC
 * 8259), so a body with invalid bytes is refused saying where, instead of decoded with U+FFFD.
 */
export const strictJsonTextDecoder = {
  decode(input?: Uint8Array): string {
    if (input && !isUtf8(input)) {
      const at = firstInvalidUtf8(input);
      throw new ConnectError(
        `the request body is not valid UTF-8 (byte 0x${input[at].toString(16).padStart(2, "0")} at offset ${at}): JSON must be encoded in UTF-8`,
        Code.InvalidArgument,
      );
    }
    return lenient.decode(input);
  },
};
const lenient = new TextDecoder();

/** Offset of the first byte that does not start a well-formed UTF-8 sequence (-1: none). */
export function firstInvalidUtf8(b: Uint8Array): number {
  for (let i = 0; i < b.length;) {
    const c = b[i];
    const more = c < 0x80 ? 0 : c >= 0xc2 && c <= 0xdf ? 1 : c >= 0xe0 && c <= 0xef ? 2 : c >= 0xf0 && c <= 0xf4 ? 3 : -1;
    if (more < 0) return i;
    // The second byte's range excludes overlong forms, surrogates and code points past U+10FFFF.
    const lo = c === 0xe0 ? 0xa0 : c === 0xf0 ? 0x90 : 0x80;
    const hi = c === 0xed ? 0x9f : c === 0xf4 ? 0x8f : 0xbf;
    for (let k = 1; k <= more; k++) {
      const x = b[i + k];
      if (x === undefined || x < (k === 1 ? lo : 0x80) || x > (k === 1 ? hi : 0xbf)) return i;
    }
    i += more + 1;
  }
  return -1;
}

/**
 * The path (protovalidate style: `rules[0].values[2]`, `labels["k"]`) of the first string in
 * `bytes` that is not UTF-8, walking the wire format with `desc`; undefined when there is none or
 * the bytes are not well-formed enough to walk.
 */
function invalidUtf8Field(desc: DescMessage, bytes: Uint8Array, prefix: string, depth: number): string | undefined {
  if (depth > 100) return undefined;
  try {
    const reader = new BinaryReader(bytes);
    const seen = new Map<number, number>();
    while (reader.pos < reader.len) {
      const [no, wireType] = reader.tag();
      const field = desc.fields.find((f) => f.number === no);
      if (field === undefined || wireType !== WireType.LengthDelimited) {
        reader.skip(wireType, no);
        continue;
      }
      const data = reader.bytes();
      const index = seen.get(no) ?? 0;
      seen.set(no, index + 1);
      const found = invalidUtf8In(field, data, `${prefix}${field.name}`, index, depth);
      if (found) return found;
    }
  } catch {
    // Not walkable: the caller falls back to protobuf-es's reason.
  }
  return undefined;
}

function invalidUtf8In(field: DescField, data: Uint8Array, path: string, index: number, depth: number): string | undefined {
  switch (field.fieldKind) {
    case "scalar":
      return field.scalar === ScalarType.STRING && !isUtf8(data) ? path : undefined;
    case "message":
      return invalidUtf8Field(field.message, data, `${path}.`, depth + 1);
    case "list":
      if (field.listKind === "scalar") return field.scalar === ScalarType.STRING && !isUtf8(data) ? `${path}[${index}]` : undefined;
      if (field.listKind === "message") return invalidUtf8Field(field.message, data, `${path}[${index}].`, depth + 1);
      return undefined;
    case "map": {
      // An entry: key = 1, value = 2.
      const entry = new BinaryReader(data);
      let key: string | undefined;
      while (entry.pos < entry.len) {
        const [no, wireType] = entry.tag();
        if (no === 1 && wireType === WireType.LengthDelimited && field.mapKey === ScalarType.STRING) {
          const raw = entry.bytes();
          if (!isUtf8(raw)) return `${path}: a key`;
          key = Buffer.from(raw).toString("utf8");
        } else if (no === 2 && wireType === WireType.LengthDelimited) {
          const raw = entry.bytes();
          const at = `${path}[${key === undefined ? "…" : JSON.stringify(key)}]`;
          if (field.mapKind === "scalar" && field.scalar === ScalarType.STRING && !isUtf8(raw)) return at;
          if (field.mapKind === "message") {
            const found = invalidUtf8Field(field.message, raw, `${at}.`, depth + 1);
            if (found) return found;
          }
        } else {
          entry.skip(wireType, no);
        }
      }
      return undefined;
    }
    default:
      return undefined;
  }
}
