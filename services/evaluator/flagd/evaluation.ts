/**
 * flagd.evaluation.v1 and v2: flagd's remote-evaluation protocol on Vane's port 8013, for the
 * rpc resolver of @openfeature/flagd-provider (v2) and the web provider and older server
 * providers (v1). Evaluation errors become statuses the way flagd reports them:
 * FLAG_NOT_FOUND → NOT_FOUND, TYPE_MISMATCH → INVALID_ARGUMENT, PARSE_ERROR → DATA_LOSS,
 * GENERAL → UNKNOWN. DISABLED flags, and DEFAULT without a default variant, succeed without a
 * value (v2: value and variant absent; v1: zero value, empty variant), so the provider uses the
 * caller's code default.
 */
import { create, type DescMessage, type MessageInitShape, type MessageShape } from "@bufbuild/protobuf";
import type { JsonObject } from "@bufbuild/protobuf";
import { Code, ConnectError, type HandlerContext, type ServiceImpl } from "@connectrpc/connect";
import * as v1 from "#gen/flagd/evaluation/v1/evaluation_pb.js";
import * as v2 from "#gen/flagd/evaluation/v2/evaluation_pb.js";
import type { FlagValueType, Resolution } from "#engine";
import type { ChangeHub } from "../snapshots/change-hub.ts";
import { contextFromStruct, createResponseCache, structOf, type FlagEvaluator } from "../evaluate.ts";
import { targetState, unknownEnvironment, type FlagdAccess } from "./access.ts";
import type { EnvironmentChange, SnapshotStore } from "../snapshots/store.ts";
import { notFound } from "#lib/process/errors.ts";
import { shareMessage } from "#lib/server/shared-frames.ts";

/** Dependencies of the flagd evaluation services. */
export interface FlagdEvaluationDeps {
  store: SnapshotStore;
  evaluator: FlagEvaluator;
  hub: ChangeHub;
  access: FlagdAccess;
  /** Interval of `keep_alive` events (flagd: 20 s). */
  keepAliveMs: number;
  onStream?: () => () => void;
}

const statusOf: Record<NonNullable<Resolution["errorCode"]>, Code> = {
  FLAG_NOT_FOUND: Code.NotFound,
  TYPE_MISMATCH: Code.InvalidArgument,
  PARSE_ERROR: Code.DataLoss,
  GENERAL: Code.Unknown,
};

/** The flagd status for an evaluation error. */
export function flagdError(res: Resolution): ConnectError {
  return new ConnectError(res.errorMessage ?? res.errorCode ?? "evaluation failed", statusOf[res.errorCode ?? "GENERAL"]);
}

const MAX_INT64 = 9223372036854775807n;
const MIN_INT64 = -9223372036854775808n;
function int64(v: unknown): bigint {
  const n = BigInt(Math.trunc(v as number));
  return n > MAX_INT64 ? MAX_INT64 : n < MIN_INT64 ? MIN_INT64 : n;
}

type Resolver = (req: { flagKey: string; context?: JsonObject }, ctx: HandlerContext) => Resolution;

function createResolver(deps: FlagdEvaluationDeps, type: FlagValueType, api: string): Resolver {
  return (req, ctx) => {
    const target = deps.access.target(ctx);
    const state = targetState(deps.store, target);
    if (target.clientOnly && !state.clientVisible.has(req.flagKey)) throw notFound(`flag "${req.flagKey}"`);
    const res = deps.evaluator.evaluate(state, req.flagKey, contextFromStruct(req.context), type, api);
    if (res.reason === "ERROR") throw flagdError(res);
    return res;
  };
}

/** flagd.evaluation.v2.Service. */
export function createFlagdEvaluationV2(deps: FlagdEvaluationDeps): ServiceImpl<typeof v2.Service> {
  const bool = createResolver(deps, "boolean", "flagd_v2");
  const str = createResolver(deps, "string", "flagd_v2");
  const num = createResolver(deps, "number", "flagd_v2");
  const int = createResolver(deps, "integer", "flagd_v2");
  const obj = createResolver(deps, "object", "flagd_v2");
  const common = (r: Resolution) => ({ reason: r.reason as string, variant: r.variant, metadata: structOf(r.metadata) });
  const boolRes = createResponseCache((r) => create(v2.ResolveBooleanResponseSchema, { ...common(r), value: r.value as boolean | undefined }));
  const strRes = createResponseCache((r) => create(v2.ResolveStringResponseSchema, { ...common(r), value: r.value as string | undefined }));
  const numRes = createResponseCache((r) => create(v2.ResolveFloatResponseSchema, { ...common(r), value: r.value as number | undefined }));
  const intRes = createResponseCache((r) => create(v2.ResolveIntResponseSchema, { ...common(r), value: r.value === undefined ? undefined : int64(r.value) }));
  const objRes = createResponseCache((r) =>
    create(v2.ResolveObjectResponseSchema, { ...common(r), value: r.value === undefined ? undefined : structOf(r.value as Record<string, unknown>) }),
  );
  return {
    resolveBoolean: (req, ctx) => boolRes(bool(req, ctx)),
    resolveString: (req, ctx) => strRes(str(req, ctx)),
    resolveFloat: (req, ctx) => numRes(num(req, ctx)),
    resolveInt: (req, ctx) => intRes(int(req, ctx)),
    resolveObject: (req, ctx) => objRes(obj(req, ctx)),
    eventStream: createEventStream(deps, v2.EventStreamResponseSchema),
  };
}

/** flagd.evaluation.v1.Service. */
export function createFlagdEvaluationV1(deps: FlagdEvaluationDeps): ServiceImpl<typeof v1.Service> {
  const bool = createResolver(deps, "boolean", "flagd_v1");
  const str = createResolver(deps, "string", "flagd_v1");
  const num = createResolver(deps, "number", "flagd_v1");
  const int = createResolver(deps, "integer", "flagd_v1");
  const obj = createResolver(deps, "object", "flagd_v1");
  const common = (r: Resolution) => ({ reason: r.reason as string, variant: r.variant ?? "", metadata: structOf(r.metadata) });
  const boolRes = createResponseCache((r) => create(v1.ResolveBooleanResponseSchema, { ...common(r), value: (r.value as boolean | undefined) ?? false }));
  const strRes = createResponseCache((r) => create(v1.ResolveStringResponseSchema, { ...common(r), value: (r.value as string | undefined) ?? "" }));
  const numRes = createResponseCache((r) => create(v1.ResolveFloatResponseSchema, { ...common(r), value: (r.value as number | undefined) ?? 0 }));
  const intRes = createResponseCache((r) => create(v1.ResolveIntResponseSchema, { ...common(r), value: r.value === undefined ? 0n : int64(r.value) }));
  const objRes = createResponseCache((r) =>
    create(v1.ResolveObjectResponseSchema, { ...common(r), value: r.value === undefined ? undefined : structOf(r.value as Record<string, unknown>) }),
  );
  const anyFlag = createResponseCache((r) =>
    create(v1.AnyFlagSchema, { reason: r.reason, variant: r.variant ?? "", value: anyValue(r.value), metadata: structOf(r.metadata) }),
  );
  return {
    resolveAll(req, ctx) {
      const target = deps.access.target(ctx);
      const state = targetState(deps.store, target);
      const flags: Record<string, v1.AnyFlag> = {};
      // As flagd: only flags with a value (not disabled, not failed, not code-default).
      for (const [key, res] of deps.evaluator.evaluateAll(state, contextFromStruct(req.context), target.clientOnly, "flagd_v1_all")) {
        if (res.value !== undefined) flags[key] = anyFlag(res);
      }
      return create(v1.ResolveAllResponseSchema, { flags, metadata: structOf(state.flags.metadata) });
    },
    resolveBoolean: (req, ctx) => boolRes(bool(req, ctx)),
    resolveString: (req, ctx) => strRes(str(req, ctx)),
    resolveFloat: (req, ctx) => numRes(num(req, ctx)),
    resolveInt: (req, ctx) => intRes(int(req, ctx)),
    resolveObject: (req, ctx) => objRes(obj(req, ctx)),
    eventStream: createEventStream(deps, v1.EventStreamResponseSchema),
  };
}

function anyValue(v: unknown): MessageInitShape<typeof v1.AnyFlagSchema>["value"] {
  switch (typeof v) {
    case "boolean":
      return { case: "boolValue", value: v };
    case "string":
      return { case: "stringValue", value: v };
    case "number":
      return { case: "doubleValue", value: v };
    case "object":
      return v === null ? undefined : { case: "objectValue", value: structOf(v as Record<string, unknown>) };
    default:
      return undefined;
  }
}

/** flagd's notification types for configuration_change. */
function changeData(changes: EnvironmentChange[], clientOnly: boolean): Record<string, unknown> | undefined {
  const flags: Record<string, { type: string }> = {};
  for (const c of changes) {
    for (const key of c.changedKeys) {
      const visible = !clientOnly || c.current?.clientVisible.has(key) || c.previous?.clientVisible.has(key);
      if (!visible) continue;
      const type = !c.current?.flags.has(key) ? "delete" : c.previous?.flags.has(key) ? "update" : "write";
      flags[key] = { type };
    }
  }
  return Object.keys(flags).length === 0 ? undefined : { flags };
}

/** True when every environment held belongs to the same organization. */
function singleTenant(deps: FlagdEvaluationDeps): boolean {
  let org: string | undefined;
  for (const e of deps.store.environments()) {
    if (org === undefined) org = e.organizationId;
    else if (e.organizationId !== org) return false;
  }
  return true;
}

type EventSchema = typeof v1.EventStreamResponseSchema | typeof v2.EventStreamResponseSchema;

/**
 * EventStream: `provider_ready` once the environment is loaded (NOT_FOUND when it is unknown),
 * `keep_alive` every `keepAliveMs`, and `configuration_change` naming the changed flags. The rpc provider sends
 * no selector on this call, so without a token or default environment the stream reports
 * changes in every environment, naming keys only within a single organization.
 */
function createEventStream<S extends EventSchema>(deps: FlagdEvaluationDeps, schema: S) {
  const event = (type: string, data?: Record<string, unknown>) =>
    create(schema as DescMessage, { type, data: data ? structOf(data) : undefined }) as MessageShape<S>;
  // A change reaches every stream of its environment: its event is built once per change and
  // kind of stream, and shared (encoded once on the gRPC fast path), when the stream's batch is
  // that one change.
  const shared = new WeakMap<EnvironmentChange, Map<string, MessageShape<S> | undefined>>();
  const changeEvent = (got: EnvironmentChange[], kind: string, build: () => MessageShape<S> | undefined) => {
    if (got.length !== 1) return build();
    let byKind = shared.get(got[0]);
    if (!byKind) shared.set(got[0], (byKind = new Map()));
    if (!byKind.has(kind)) {
      const m = build();
      byKind.set(kind, m && shareMessage(m));
    }
    return byKind.get(kind);
  };
  return async function* eventStream(_req: unknown, ctx: HandlerContext): AsyncGenerator<MessageShape<S>> {
    const target = deps.access.optionalTarget(ctx);
    if (target) {
      // flagd answers an unknown selector at once; failing fast beats a provider's init timeout.
      const loaded = await deps.hub.loaded(target.environmentId, ctx.signal);
      if (loaded === "aborted") return;
      if (loaded === "unknown") throw unknownEnvironment(target);
    }
    const closeStream = deps.onStream?.();
    const changes = deps.hub.follow(target?.environmentId ?? "*", ctx.signal);
    try {
      yield event("provider_ready");
      let pending = changes.next();
      for (;;) {
        let timer: NodeJS.Timeout | undefined;
        const tick = new Promise<"tick">((r) => (timer = setTimeout(() => r("tick"), deps.keepAliveMs)));
        const got = await Promise.race([pending, tick]);
        clearTimeout(timer);
        if (got === "tick") {
          yield event("keep_alive");
          continue;
        }
        if (got === undefined) return;
        pending = changes.next();
        if (target) {
          const m = changeEvent(got, target.clientOnly ? "client" : "all", () => {
            const data = changeData(got, target.clientOnly);
            return data && event("configuration_change", data);
          });
          if (m) yield m;
        } else {
          // No environment selected (the rpc provider sends no selector on this call): name the
          // changed keys only while every environment held belongs to one organization, so a
          // caller never learns another tenant's flag keys; otherwise say only that something
          // changed.
          yield changeEvent(got, "any", () => event("configuration_change", singleTenant(deps) ? (changeData(got, false) ?? { flags: {} }) : { flags: {} }))!;
        }
      }
    } finally {
      changes.close();
      closeStream?.();
    }
  };
}
