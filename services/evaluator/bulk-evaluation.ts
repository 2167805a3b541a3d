/**
 * EvaluateAll's answer: tagged (bulk-etag.ts), "not modified" when the caller already holds it,
 * else from the cache of answers for repeated contexts (bulk-cache.ts), else evaluated. Exposures
 * of experiment flags are reported whenever evaluations are delivered — evaluated or cached, as
 * the caller may act on them again — and not for "not modified", which delivers none (as OFREP's
 * 304): the caller keeps using values whose exposures were reported when it got them.
 */
import type { EvaluateAllResponse } from "#gen/vane/evaluation/v1/evaluation_service_pb.js";
import type { EvaluationContext } from "#engine";
import { ifNoneMatchNames } from "#lib/server/entity-tags.ts";
import { buildBulkAnswer, notModifiedAnswer } from "./bulk-answer.ts";
import type { BulkCache } from "./bulk-cache.ts";
import { bulkTag } from "./bulk-etag.ts";
import type { FlagEvaluator } from "./evaluate.ts";
import type { EnvironmentState } from "./snapshots/store.ts";

const API = "vane_all";

/** Who asks: what they may see, and whether their evaluations are exposures. */
export interface BulkCaller {
  clientOnly: boolean;
  exposures: boolean;
}

/**
 * Answers one EvaluateAll. `ifNoneMatch` is the request's tag or If-None-Match header (a bad
 * header is INVALID_ARGUMENT); the ETag and caching headers are set on `responseHeader`.
 */
export function answerEvaluateAll(
  deps: { evaluator: FlagEvaluator; cache: BulkCache },
  state: EnvironmentState,
  caller: BulkCaller,
  context: EvaluationContext,
  ifNoneMatch: string | null,
  responseHeader: Headers,
): EvaluateAllResponse {
  const { evaluator, cache } = deps;
  const etag = bulkTag(state, caller.clientOnly, context, (key) => evaluator.evaluate(state, key, context, undefined, API, false));
  const notModified = ifNoneMatchNames(ifNoneMatch, etag);
  responseHeader.set("etag", etag);
  // Stored by browsers and shared caches, but revalidated on every use (a 304 when unchanged);
  // per credential, as the caller's visibility is in the answer.
  responseHeader.set("cache-control", "no-cache");
  responseHeader.set("vary", "authorization, x-api-key");
  let answer = cache.get(state.environmentId, etag);
  if (notModified) return answer?.notModified ?? notModifiedAnswer(state, etag);
  if (answer !== undefined) {
    evaluator.redeliver(state, context, answer, API, caller.exposures);
    return answer.response;
  }
  answer = buildBulkAnswer(state, etag, evaluator.evaluateAll(state, context, caller.clientOnly, API, caller.exposures));
  cache.add(answer);
  return answer.response;
}
