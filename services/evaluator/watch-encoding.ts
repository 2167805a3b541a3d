/**
 * WatchResponse bytes assembled from per-evaluation pieces. One change is re-evaluated for every
 * open stream, and most streams get the very same (shared) Evaluation objects; each one's
 * length-delimited field is encoded once and reused by every stream's message. The result is
 * byte-for-byte what toBinary gives (protobuf-es writes fields in number order, and
 * `evaluations` is field 1), so any client decodes it the same.
 */
import { create, toBinary } from "@bufbuild/protobuf";
import { BinaryWriter, WireType } from "@bufbuild/protobuf/wire";
import { EvaluationSchema, WatchResponseSchema, type Evaluation, type WatchResponse } from "#gen/vane/evaluation/v1/evaluation_service_pb.js";

const EVALUATIONS_FIELD = 1;
const fields = new WeakMap<Evaluation, Uint8Array>();

/** `evaluation` as WatchResponse field 1: tag, length, message. */
function evaluationField(e: Evaluation): Uint8Array {
  let b = fields.get(e);
  if (b === undefined) {
    b = new BinaryWriter().tag(EVALUATIONS_FIELD, WireType.LengthDelimited).bytes(toBinary(EvaluationSchema, e)).finish();
    fields.set(e, b);
  }
  return b;
}

/** The binary encoding of `response`. */
export function encodeWatchResponse(response: WatchResponse): Uint8Array {
  const parts = response.evaluations.map(evaluationField);
  const rest = toBinary(WatchResponseSchema, create(WatchResponseSchema, { ...response, evaluations: [] }));
  let size = rest.length;
  for (const p of parts) size += p.length;
  const out = new Uint8Array(size);
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  out.set(rest, at);
  return out;
}
