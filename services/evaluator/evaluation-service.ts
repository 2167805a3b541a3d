/**
 * vane.evaluation.v1.EvaluationService: evaluation for Vane's own SDKs and browsers, scoped by
 * the caller's token. A server key evaluates every flag of its environment, a client key the
 * client-visible ones; people and admin keys may name an environment of their organization
 * (admin keys: of their project), e.g. to preview a flag in the console.
 */
import { create } from "@bufbuild/protobuf";
import type { ConnectError, HandlerContext, ServiceImpl } from "@connectrpc/connect";
import {
  EvaluateAllResponseSchema,
  EvaluateResponseSchema,
  EvaluationService,
  ValueType,
  type Evaluation,
} from "#gen/vane/evaluation/v1/evaluation_service_pb.js";
import { ApiKeyKind, Role, hasRole, requirePrincipal } from "#lib/auth/auth.ts";
import type { FlagValueType } from "#engine";
import { createBulkCache, type BulkCache } from "./bulk-cache.ts";
import { answerEvaluateAll } from "./bulk-evaluation.ts";
import { contextFromStruct, toEvaluation, type FlagEvaluator } from "./evaluate.ts";
import { withExplanation } from "./explain.ts";
import type { EnvironmentState, SnapshotStore } from "./snapshots/store.ts";
import { invalidArgument, notFound, permissionDenied, unavailable } from "#lib/process/errors.ts";
import type { WatchFanOut } from "./watch/fan-out.ts";

/** Dependencies of {@link createEvaluationService}. */
export interface EvaluationServiceDeps {
  store: SnapshotStore;
  evaluator: FlagEvaluator;
  /** Watch streams' fan-out (watch/fan-out.ts). */
  watchers: WatchFanOut;
  /** Called when a watch stream opens; returns the close callback (metrics). */
  onStream?: () => () => void;
  /** EvaluateAll's answers for repeated contexts (none kept when absent). */
  bulkCache?: BulkCache;
}

const types: Record<ValueType, FlagValueType | undefined> = {
  [ValueType.UNSPECIFIED]: undefined,
  [ValueType.BOOLEAN]: "boolean",
  [ValueType.STRING]: "string",
  [ValueType.NUMBER]: "number",
  [ValueType.INTEGER]: "integer",
  [ValueType.OBJECT]: "object",
};

interface Target {
  environmentId: string;
  clientOnly: boolean;
  /** Only server and client keys' evaluations are exposures; people's (console, CLI) never are. */
  exposures: boolean;
}

/** Which environment the caller evaluates, and whether only client-visible flags. */
export function evaluationTarget(ctx: HandlerContext, store: SnapshotStore, requested: string): Target {
  const p = requirePrincipal(ctx);
  if (p.keyKind === ApiKeyKind.SERVER || p.keyKind === ApiKeyKind.CLIENT) {
    if (!p.environmentId) throw permissionDenied("this key's token names no environment");
    if (requested && requested !== p.environmentId) {
      throw permissionDenied("server and client keys evaluate their own environment only; leave environment_id empty");
    }
    return { environmentId: p.environmentId, clientOnly: p.keyKind === ApiKeyKind.CLIENT, exposures: true };
  }
  if (!requested) throw invalidArgument("environment_id is required unless you call with a server or client key");
  if (!hasRole(p, Role.VIEWER)) throw permissionDenied("this needs the viewer role or higher");
  const s = store.get(requested);
  // Another organization's environment (or project's, for an admin key) is indistinguishable
  // from none: the same error, before and after the initial load.
  const visible =
    s !== undefined && s.organizationId !== "" && s.organizationId === p.organizationId && (p.keyKind !== ApiKeyKind.ADMIN || s.projectId === p.projectId);
  if (!visible) throw missingEnvironment(store, requested);
  return { environmentId: requested, clientOnly: false, exposures: false };
}

/**
 * Explanations show targeting rules (attributes, values, segments): only for people and admin or
 * personal keys, who may read them through the flags API; server and client keys may not.
 */
function mayExplain(target: Target): void {
  if (target.exposures)
    throw permissionDenied(
      "explain needs a person's token or an admin or personal key: explanations show targeting rules, which server and client keys may not read",
    );
}

// Until the initial load is done an environment not held may still arrive (retry); after it, it
// does not exist.
function missingEnvironment(store: SnapshotStore, environmentId: string): ConnectError {
  if (!store.initialLoadDone) return unavailable("this environment's configuration is not loaded yet; retry shortly");
  return notFound(`environment "${environmentId}"`);
}

function loadedState(store: SnapshotStore, environmentId: string): EnvironmentState {
  const s = store.get(environmentId);
  if (!s) throw missingEnvironment(store, environmentId);
  return s;
}

/** The EvaluationService implementation. */
export function createEvaluationService(deps: EvaluationServiceDeps): ServiceImpl<typeof EvaluationService> {
  const { store, evaluator, watchers } = deps;
  const bulk = { evaluator, cache: deps.bulkCache ?? createBulkCache({ maxEntries: 0, maxBytes: 0 }) };
  return {
    evaluate(req, ctx) {
      const target = evaluationTarget(ctx, store, req.environmentId);
      if (req.explain) mayExplain(target);
      const state = loadedState(store, target.environmentId);
      if (target.clientOnly && !state.clientVisible.has(req.flagKey)) throw notFound(`flag "${req.flagKey}"`);
      const context = contextFromStruct(req.context);
      const res = evaluator.evaluate(state, req.flagKey, context, types[req.type], "vane", target.exposures);
      if (res.errorCode === "FLAG_NOT_FOUND") throw notFound(`flag "${req.flagKey}"`);
      if (res.errorCode === "TYPE_MISMATCH") throw invalidArgument(res.errorMessage ?? "type mismatch");
      const evaluation = toEvaluation(req.flagKey, res);
      return create(EvaluateResponseSchema, {
        evaluation: req.explain ? withExplanation(evaluation, state, req.flagKey, context) : evaluation,
        version: BigInt(state.version),
      });
    },
    evaluateAll(req, ctx) {
      const target = evaluationTarget(ctx, store, req.environmentId);
      if (req.explain) mayExplain(target);
      const state = loadedState(store, target.environmentId);
      const context = contextFromStruct(req.context);
      // Explained answers are for people debugging: neither tagged nor cached.
      if (!req.explain) return answerEvaluateAll(bulk, state, target, context, req.ifNoneMatch || ctx.requestHeader.get("if-none-match"), ctx.responseHeader);
      const all = evaluator.evaluateAll(state, context, target.clientOnly, "vane_all", target.exposures);
      const evaluations: Evaluation[] = [];
      for (const [key, res] of all) {
        const e = toEvaluation(key, res);
        evaluations.push(withExplanation(e, state, key, context));
      }
      return create(EvaluateAllResponseSchema, { evaluations, environmentId: state.environmentId, version: BigInt(state.version) });
    },
    async *watch(req, ctx) {
      const target = evaluationTarget(ctx, store, req.environmentId);
      loadedState(store, target.environmentId);
      const context = contextFromStruct(req.context);
      const closeStream = deps.onStream?.();
      try {
        yield* watchers.watch(target, context, req.deltas, ctx.signal);
      } finally {
        closeStream?.();
      }
    },
  };
}
