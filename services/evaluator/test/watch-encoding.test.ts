import { create, fromJson, toBinary } from "@bufbuild/protobuf";
import { timestampFromMs, ValueSchema } from "@bufbuild/protobuf/wkt";
import { describe, expect, it } from "vitest";
import { ErrorCode, EvaluationSchema, Reason, WatchResponseSchema } from "#gen/vane/evaluation/v1/evaluation_service_pb.js";
import { encodeWatchResponse } from "../watch-encoding.ts";

const evaluations = [
  create(EvaluationSchema, { flagKey: "banner", value: fromJson(ValueSchema, true), variant: "on", reason: Reason.STATIC, metadata: { flagSetId: "web", version: 3 } }),
  create(EvaluationSchema, { flagKey: "copy", value: fromJson(ValueSchema, "Grüße — 你好"), variant: "de", reason: Reason.TARGETING_MATCH }),
  create(EvaluationSchema, { flagKey: "layout", value: fromJson(ValueSchema, { columns: 3, dense: false, tags: ["a", null] }), variant: "grid", reason: Reason.DEFAULT }),
  create(EvaluationSchema, { flagKey: "broken", reason: Reason.ERROR, errorCode: ErrorCode.PARSE_ERROR, errorMessage: "bad rule" }),
  create(EvaluationSchema, { flagKey: "off", reason: Reason.DISABLED }),
];

describe("WatchResponse encoding from shared evaluation pieces", () => {
  it("gives exactly toBinary's bytes, for first and later messages sharing evaluations", () => {
    const messages = [
      create(WatchResponseSchema, { evaluations, version: 7n, changedFlagKeys: evaluations.map((e) => e.flagKey), configTime: timestampFromMs(1_764_000_000_123) }),
      create(WatchResponseSchema, { evaluations: evaluations.slice(1), version: 8n, changedFlagKeys: [], removedFlagKeys: ["banner"], configTime: timestampFromMs(1_764_000_001_000) }),
      create(WatchResponseSchema, { evaluations: [evaluations[2], evaluations[0]], version: 9007199254740993n }),
      create(WatchResponseSchema, {}),
    ];
    for (const m of messages) expect(Buffer.from(encodeWatchResponse(m)).equals(Buffer.from(toBinary(WatchResponseSchema, m)))).toBe(true);
    // The same pieces again (now cached) still give the same bytes.
    for (const m of messages) expect(Buffer.from(encodeWatchResponse(m)).equals(Buffer.from(toBinary(WatchResponseSchema, m)))).toBe(true);
  });
});
