/**
 * Two watch messages as one, for a stream that has not taken the first when the second comes
 * (a slow reader, or changes in quick succession): what the client would hold after applying
 * both in turn (see vane.evaluation.v1.WatchResponse). Built per stream, so only slow streams pay
 * for it; everyone else gets the shared messages.
 */
import { create } from "@bufbuild/protobuf";
import { WatchResponseSchema, type Evaluation, type WatchResponse } from "#gen/vane/evaluation/v1/evaluation_service_pb.js";

/** `first` then `second`, as one message: a full state if either is one, else a delta. */
export function coalesce(first: WatchResponse, second: WatchResponse): WatchResponse {
  let evaluations: Evaluation[];
  if (!second.delta) evaluations = second.evaluations;
  else {
    const byKey = new Map(first.evaluations.map((e) => [e.flagKey, e]));
    for (const key of second.removedFlagKeys) byKey.delete(key);
    for (const e of second.evaluations) byKey.set(e.flagKey, e);
    evaluations = [...byKey.values()];
  }
  const present = new Set(evaluations.map((e) => e.flagKey));
  const changed = new Set([...first.changedFlagKeys, ...second.changedFlagKeys].filter((k) => present.has(k)));
  const removed = new Set([...first.removedFlagKeys, ...second.removedFlagKeys].filter((k) => !present.has(k)));
  return create(WatchResponseSchema, {
    evaluations,
    version: second.version,
    changedFlagKeys: [...changed],
    removedFlagKeys: [...removed],
    configTime: second.configTime,
    delta: first.delta && second.delta,
  });
}
