/**
 * What a caller is told when a handler fails with something other than a ConnectError, decided
 * in one place for every service: the database unreachable (connection refused or reset, pool
 * checkout timed out, server shutting down) or too slow (statement timeout) is UNAVAILABLE, a
 * transaction that kept conflicting is ABORTED, both with a message saying what to do; anything
 * else is INTERNAL. Every INTERNAL is logged once, with the RPC, the trace id and the cause
 * (connection strings, tokens and API keys redacted); the caller gets only "internal error" and
 * the trace id to quote.
 */
import { context, isSpanContextValid, trace } from "@opentelemetry/api";
import {
  Code,
  ConnectError,
  createContextKey,
  type ContextValues,
  type Interceptor,
  type StreamRequest,
  type StreamResponse,
  type UnaryRequest,
} from "@connectrpc/connect";
import { codeToString } from "@connectrpc/connect/protocol-connect";
import { isConnectionError, isQueryCanceledCause, isRetryableTransactionCause } from "#lib/data/db.ts";
import type { Logger } from "#lib/process/logger.ts";
import { describeError } from "#lib/process/process.ts";
import { fromBinaryParseFailure, isBinaryParseFailure, receivedRequestBytes } from "#lib/server/request-decoding.ts";

/** Set on a call's context values once its INTERNAL error was logged, so no other layer logs it again. */
export const internalErrorLogged = createContextKey(false, { description: "internal error logged" });

/** Codes that mean the server failed, which the log must explain. */
const SERVER_FAULTS = new Set<Code>([Code.Internal, Code.Unknown, Code.DataLoss]);

/** The error a caller gets for `err`, a handler's failure, logging it when it is a server fault. */
export function answerFor(err: unknown, call: { rpc: string; signal?: AbortSignal; values?: ContextValues }, logger: Logger): ConnectError {
  // A handler that stopped because its call was aborted (deadline, client gone, shutdown) says
  // why the call ended, whatever it threw.
  if (call.signal?.aborted && !(err instanceof ConnectError) && isAbortError(err)) return ConnectError.from(call.signal.reason, Code.Canceled);
  const cause = err instanceof ConnectError && SERVER_FAULTS.has(err.code) ? (err.cause ?? err) : err;
  if (!(err instanceof ConnectError) || cause !== err) {
    const mapped = infrastructureFailure(cause);
    if (mapped) {
      logger.warn(
        { rpc: call.rpc, code: codeToString(mapped.code), traceId: traceId(), cause: redactSecrets(describeError(cause)) },
        `RPC failed: ${mapped.rawMessage}`,
      );
      return mapped;
    }
  }
  // ConnectError.from() of an unexpected error is UNKNOWN with that error's message: not for callers.
  const wrapsUnexpected = err instanceof ConnectError && err.code === Code.Unknown && err.cause instanceof Error && !(err.cause instanceof ConnectError);
  const answer =
    err instanceof ConnectError && !wrapsUnexpected ? err : new ConnectError(withTraceId("internal error"), Code.Internal, undefined, undefined, cause);
  if (SERVER_FAULTS.has(answer.code)) logServerFault(logger, answer, call);
  return answer;
}

/** Logs a server fault (INTERNAL, UNKNOWN, DATA_LOSS) unless this call's was logged already. */
export function logServerFault(logger: Logger, err: ConnectError, call: { rpc: string; values?: ContextValues }): void {
  if (call.values?.get(internalErrorLogged)) return;
  call.values?.set(internalErrorLogged, true);
  const cause: unknown = err.cause ?? err;
  logger.error(
    {
      rpc: call.rpc,
      code: codeToString(err.code),
      traceId: traceId(),
      error: redactSecrets(err.rawMessage),
      cause: redactSecrets(describeError(cause)),
      ...(cause instanceof Error && cause.stack ? { stack: redactSecrets(cause.stack) } : {}),
    },
    "RPC failed: internal error",
  );
}

/** UNAVAILABLE or ABORTED for failures of the infrastructure a handler depends on, else undefined. */
function infrastructureFailure(err: unknown): ConnectError | undefined {
  if (isConnectionError(err)) return new ConnectError("the database is unavailable; retry later", Code.Unavailable, undefined, undefined, err);
  // The statement was cancelled, nothing was written: the database is overloaded or a lock is
  // held too long, a transient condition worth a retry with backoff, as UNAVAILABLE promises.
  if (isQueryCanceledCause(err)) {
    return new ConnectError("the database did not answer in time (statement timeout); retry later", Code.Unavailable, undefined, undefined, err);
  }
  if (isRetryableTransactionCause(err)) {
    return new ConnectError("the change kept conflicting with concurrent changes; retry it", Code.Aborted, undefined, undefined, err);
  }
  return undefined;
}

/**
 * Server interceptor that turns whatever a handler throws into the answer above, for unary calls
 * and for errors in the middle of a response stream. Place it inside the tracing and metrics
 * interceptors, so spans and RED metrics record the code the caller gets.
 */
export function createErrorInterceptor(logger: Logger): Interceptor {
  const log = logger.child({ component: "rpc" });
  const callOf = (req: UnaryRequest | StreamRequest) => ({ rpc: `${req.service.typeName}/${req.method.name}`, signal: req.signal, values: req.contextValues });
  return (next) => async (req) => {
    // Unary calls, the hot path: nothing more than a try.
    if (!req.stream) {
      try {
        return await next(req);
      } catch (err) {
        throw answerFor(err, callOf(req), log);
      }
    }
    // A streaming request is decoded while the handler reads it: such a failure is the caller's.
    let inputFailure: unknown;
    const streaming = { ...req, message: watched(req.message, (err) => (inputFailure = err)) };
    const answer = (err: unknown): ConnectError => {
      if (err === inputFailure && err instanceof ConnectError) {
        return isBinaryParseFailure(err) ? fromBinaryParseFailure(req.method.input, req.contextValues.get(receivedRequestBytes)?.(), err) : err;
      }
      return answerFor(err, callOf(req), log);
    };
    let res;
    try {
      res = await next(streaming);
    } catch (err) {
      throw answer(err);
    }
    return res.stream ? { ...res, message: guarded(res, answer) } : res;
  };
}

async function* guarded(res: StreamResponse, answer: (err: unknown) => ConnectError) {
  try {
    yield* res.message;
  } catch (err) {
    throw answer(err);
  }
}

async function* watched<T>(input: AsyncIterable<T>, onError: (err: unknown) => void) {
  try {
    yield* input;
  } catch (err) {
    onError(err);
    throw err;
  }
}

function isAbortError(err: unknown): boolean {
  return err instanceof Error && (err.name === "AbortError" || err.name === "TimeoutError");
}

/** The active trace's id, when there is one. */
export function traceId(): string | undefined {
  const span = trace.getSpan(context.active())?.spanContext();
  return span && isSpanContextValid(span) ? span.traceId : undefined;
}

function withTraceId(message: string): string {
  const id = traceId();
  return id ? `${message} (trace id ${id})` : message;
}

/**
 * `text` with credentials blanked: passwords in URLs (`postgres://u:***@h`) and in key=value
 * connection strings, bearer tokens, JWTs and Vane API keys.
 */
export function redactSecrets(text: string): string {
  return text
    .replace(/\b([a-z][a-z0-9+.-]*:\/\/)([^\s/@:'"]+):([^\s/@'"]*)@/gi, "$1$2:***@")
    .replace(/\b(password|passwd|pwd|secret|token|api_?key)(\s*[=:]\s*)("[^"]*"|'[^']*'|[^\s,;&)'"]+)/gi, "$1$2***")
    .replace(/\b(Bearer|Basic)\s+[A-Za-z0-9._~+/=-]+/g, "$1 ***")
    .replace(/\beyJ[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*/g, "***")
    .replace(/\b(vane_[a-z]+_)[A-Za-z0-9_-]{8,}/g, "$1***");
}
