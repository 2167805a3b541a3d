/**
 * The evaluation step every surface shares (vane.evaluation.v1, flagd v1/v2): picks the
 * compiled flag set, evaluates, counts, and reports exposures for experiment flags. Also the
 * conversions between protobuf and the engine's plain values, with per-resolution caches: the
 * engine returns shared, frozen resolutions, so a response message built for one is reused
 * for every later call that gets the same resolution.
 */
import { create, fromJson, type JsonObject, type JsonValue } from "@bufbuild/protobuf";
import { ValueSchema } from "@bufbuild/protobuf/wkt";
import { ErrorCode, EvaluationSchema, Reason, type Evaluation } from "#gen/vane/evaluation/v1/evaluation_service_pb.js";
import type { EvaluationContext, FlagValueType, Resolution } from "#engine";
import type { ExposurePublisher } from "./exposures.ts";
import type { EvaluatorCounters } from "./metrics.ts";
import type { EnvironmentState } from "./snapshots/store.ts";
import { checkContext } from "./context-limits.ts";
import { exposureDimensions } from "./exposure-dimensions.ts";
import { holdoutExposure } from "./holdout-exposures.ts";

const EMPTY_CONTEXT: EvaluationContext = Object.freeze({});

/**
 * A request's context (protobuf-es represents Struct fields as plain JSON objects), checked
 * against the context limits (INVALID_ARGUMENT) on every protocol.
 */
export function contextFromStruct(s: JsonObject | undefined): EvaluationContext {
  if (!s) return EMPTY_CONTEXT;
  checkContext(s);
  return s;
}

/**
 * Evaluates flags, counting them and reporting exposures — unless `exposures` is false: people
 * previewing flags in the console or the CLI are not units of an experiment.
 */
export interface FlagEvaluator {
  evaluate(state: EnvironmentState, key: string, context: EvaluationContext, type: FlagValueType | undefined, api: string, exposures?: boolean): Resolution;
  /** Evaluates every flag (every client-visible one when `clientOnly`), in definition order. */
  evaluateAll(state: EnvironmentState, context: EvaluationContext, clientOnly: boolean, api: string, exposures?: boolean): Map<string, Resolution>;
  /** Counts and reports exposures for an evaluateAll result delivered again (a cached answer), as evaluateAll did. */
  redeliver(state: EnvironmentState, context: EvaluationContext, answer: Redelivered, api: string, exposures?: boolean): void;
}

/** What {@link FlagEvaluator.redeliver} needs of a cached answer. */
export interface Redelivered {
  readonly reasons: ReadonlyMap<string, number>;
  readonly experiments: readonly (readonly [string, Resolution])[];
}

/**
 * Creates the shared evaluation step. `staticContext` (flagd's `--context-value`, drop-in mode)
 * is laid over every request's context: the operator's values win over the caller's.
 */
export function createFlagEvaluator(counters: EvaluatorCounters, exposures: ExposurePublisher, staticContext?: EvaluationContext): FlagEvaluator {
  const enrich = staticContext && Object.keys(staticContext).length > 0 ? (c: EvaluationContext) => ({ ...c, ...staticContext }) : undefined;
  // An exposure is an evaluation whose variant the experiment's own assignment chose (the engine
  // marks those); a unit served by another rule or the default is not in the experiment.
  const expose = (state: EnvironmentState, key: string, res: Resolution, context: EvaluationContext) => {
    const experimentId = res.experimentId;
    const unitKey = context.targetingKey;
    if (experimentId === undefined || res.variant === undefined || typeof unitKey !== "string" || unitKey === "") return;
    exposures.record({
      organizationId: state.organizationId,
      projectId: state.projectId,
      environmentId: state.environmentId,
      flagKey: key,
      variant: res.variant,
      experimentId,
      unitKey,
      dimensions: exposureDimensions(res.metadata, context),
    });
  };
  // Every evaluation of a held-out flag is an exposure of the holdout, in the unit's arm.
  const exposeHoldout = (state: EnvironmentState, key: string, res: Resolution, context: EvaluationContext) => {
    const h = holdoutExposure(res.metadata, context);
    if (!h) return;
    exposures.record({
      organizationId: state.organizationId,
      projectId: state.projectId,
      environmentId: state.environmentId,
      flagKey: key,
      variant: h.arm,
      experimentId: h.holdoutId,
      unitKey: h.unitKey,
    });
  };
  return {
    evaluate(state, key, requestContext, type, api, exposures = true) {
      const context = enrich ? enrich(requestContext) : requestContext;
      const res = state.flags.evaluate(key, context, type);
      counters.evaluation(api, res.reason);
      if (res.experimentId !== undefined && exposures) expose(state, key, res, context);
      if (exposures && res.metadata.holdoutId !== undefined) exposeHoldout(state, key, res, context);
      return res;
    },
    evaluateAll(state, requestContext, clientOnly, api, exposures = true) {
      const context = enrich ? enrich(requestContext) : requestContext;
      const all = state.flags.evaluateAll(context);
      if (clientOnly) for (const key of all.keys()) if (!state.clientVisible.has(key)) all.delete(key);
      for (const [key, res] of all) {
        counters.evaluation(api, res.reason);
        if (res.experimentId !== undefined && exposures) expose(state, key, res, context);
        if (exposures && res.metadata.holdoutId !== undefined) exposeHoldout(state, key, res, context);
      }
      return all;
    },
    redeliver(state, requestContext, answer, api, exposures = true) {
      for (const [reason, n] of answer.reasons) counters.evaluation(api, reason, n);
      if (!exposures || answer.experiments.length === 0) return;
      const context = enrich ? enrich(requestContext) : requestContext;
      for (const [key, res] of answer.experiments) {
        expose(state, key, res, context);
        if (res.metadata.holdoutId !== undefined) exposeHoldout(state, key, res, context);
      }
    },
  };
}

/** A plain object as a Struct field's value (protobuf-es keeps Struct fields as JSON objects). */
export function structOf(o: Readonly<Record<string, unknown>>): JsonObject {
  return o as JsonObject;
}

const reasons: Record<Resolution["reason"], Reason> = {
  STATIC: Reason.STATIC,
  TARGETING_MATCH: Reason.TARGETING_MATCH,
  DEFAULT: Reason.DEFAULT,
  DISABLED: Reason.DISABLED,
  ERROR: Reason.ERROR,
};
const errorCodes: Record<NonNullable<Resolution["errorCode"]>, ErrorCode> = {
  FLAG_NOT_FOUND: ErrorCode.FLAG_NOT_FOUND,
  TYPE_MISMATCH: ErrorCode.TYPE_MISMATCH,
  PARSE_ERROR: ErrorCode.PARSE_ERROR,
  GENERAL: ErrorCode.GENERAL,
};
const evaluations = new WeakMap<Resolution, Evaluation>();

/** A resolution as a vane.evaluation.v1 Evaluation (shared: never mutate the result). */
export function toEvaluation(key: string, res: Resolution): Evaluation {
  let e = evaluations.get(res);
  if (e && e.flagKey === key) return e;
  e = create(EvaluationSchema, {
    flagKey: key,
    value: res.value === undefined ? undefined : fromJson(ValueSchema, res.value as JsonValue),
    variant: res.variant ?? "",
    reason: reasons[res.reason],
    errorCode: res.errorCode ? errorCodes[res.errorCode] : ErrorCode.UNSPECIFIED,
    errorMessage: res.errorMessage ?? "",
    metadata: structOf(res.metadata),
  });
  evaluations.set(res, e);
  return e;
}

/** A per-resolution cache for one kind of response message. */
export function createResponseCache<T>(build: (res: Resolution) => T): (res: Resolution) => T {
  const cache = new WeakMap<Resolution, T>();
  return (res) => {
    let m = cache.get(res);
    if (m === undefined) cache.set(res, (m = build(res)));
    return m;
  };
}
