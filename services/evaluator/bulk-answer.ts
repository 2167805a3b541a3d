/**
 * A bulk evaluation's answer (EvaluateAllResponse) with its wire encodings prepared from parts:
 * each Evaluation is shared by every answer that holds the same resolution (evaluate.ts), so its
 * encoding is computed once and an answer is a concatenation. Flags without targeting resolve
 * to one shared resolution per version, so they cost a lookup here, not a serialisation. The
 * bytes are exactly protobuf-es's (fields in number order; JSON as toJsonString writes it).
 */
import { create, toBinary, toJsonString } from "@bufbuild/protobuf";
import { EvaluateAllResponseSchema, EvaluationSchema, type EvaluateAllResponse, type Evaluation } from "#gen/vane/evaluation/v1/evaluation_service_pb.js";
import type { Resolution } from "#engine";
import { prepareEncodings } from "#lib/server/prepared-encodings.ts";
import { toEvaluation } from "./evaluate.ts";
import type { EnvironmentState } from "./snapshots/store.ts";

/** One bulk answer: shared, never mutate. */
export interface BulkAnswer {
  readonly state: EnvironmentState;
  readonly etag: string;
  readonly response: EvaluateAllResponse;
  /** The same answer as "not modified". */
  readonly notModified: EvaluateAllResponse;
  /** Its encodings' size (binary and JSON, estimated from the parts), for the cache's bound. */
  readonly bytes: number;
  /** How many evaluations had each reason (metrics count every delivery). */
  readonly reasons: ReadonlyMap<string, number>;
  /** The resolutions of experiment and holdout flags (exposures are reported at every delivery). */
  readonly experiments: readonly (readonly [string, Resolution])[];
}

const utf8 = new TextEncoder();
interface Fragment {
  /** Field 1 of EvaluateAllResponse: tag, length, message. */
  binary: Uint8Array;
  json: string;
}
const fragments = new WeakMap<Evaluation, Fragment>();
function fragment(e: Evaluation): Fragment {
  let f = fragments.get(e);
  if (f === undefined) {
    const body = toBinary(EvaluationSchema, e);
    const head = [0x0a, ...varint(body.length)];
    const binary = new Uint8Array(head.length + body.length);
    binary.set(head);
    binary.set(body, head.length);
    fragments.set(e, (f = { binary, json: toJsonString(EvaluationSchema, e) }));
  }
  return f;
}

function varint(n: number): number[] {
  const out: number[] = [];
  while (n > 0x7f) {
    out.push((n & 0x7f) | 0x80);
    n >>>= 7;
  }
  out.push(n);
  return out;
}

/** Prepares the encodings of `response` (built on first use); returns their size, estimated from the parts. */
function prepare(response: EvaluateAllResponse): number {
  const parts = response.evaluations.map(fragment);
  const rest = create(EvaluateAllResponseSchema, {
    environmentId: response.environmentId,
    version: response.version,
    etag: response.etag,
    notModified: response.notModified,
  });
  let binary: Uint8Array | undefined;
  let json: Uint8Array | undefined;
  prepareEncodings(response, {
    binary: () => (binary ??= Buffer.concat([...parts.map((p) => p.binary), toBinary(EvaluateAllResponseSchema, rest)])),
    json() {
      if (json === undefined) {
        const tail = toJsonString(EvaluateAllResponseSchema, rest);
        const evaluations = parts.length === 0 ? "" : `"evaluations":[${parts.map((p) => p.json).join(",")}]`;
        json = utf8.encode(tail === "{}" ? `{${evaluations}}` : evaluations === "" ? tail : `{${evaluations},${tail.slice(1)}`);
      }
      return json;
    },
  });
  let size = 64 + 2 * response.etag.length + response.environmentId.length;
  for (const p of parts) size += p.binary.length + p.json.length;
  return size;
}

/** The answer for `results` (engine resolutions in definition order) tagged `etag`. */
export function buildBulkAnswer(state: EnvironmentState, etag: string, results: ReadonlyMap<string, Resolution>): BulkAnswer {
  const evaluations: Evaluation[] = [];
  const reasons = new Map<string, number>();
  const experiments: [string, Resolution][] = [];
  for (const [key, res] of results) {
    evaluations.push(toEvaluation(key, res));
    reasons.set(res.reason, (reasons.get(res.reason) ?? 0) + 1);
    // Experiment and holdout exposures are replayed when the answer is served again.
    if (res.experimentId !== undefined || res.metadata.holdoutId !== undefined) experiments.push([key, res]);
  }
  const head = { environmentId: state.environmentId, version: BigInt(state.version), etag };
  const response = create(EvaluateAllResponseSchema, { ...head, evaluations });
  const bytes = prepare(response);
  let notModified: EvaluateAllResponse | undefined;
  return {
    state,
    etag,
    response,
    get notModified() {
      if (notModified === undefined) prepare((notModified = create(EvaluateAllResponseSchema, { ...head, notModified: true })));
      return notModified;
    },
    bytes,
    reasons,
    experiments,
  };
}

/** The "not modified" answer alone (the caller's tag named an answer no longer cached). */
export function notModifiedAnswer(state: EnvironmentState, etag: string): EvaluateAllResponse {
  const response = create(EvaluateAllResponseSchema, { environmentId: state.environmentId, version: BigInt(state.version), etag, notModified: true });
  prepare(response);
  return response;
}
