/**
 * One call's context on the fast paths (grpc-fast-path.ts, connect-fast-path.ts). Connect's
 * createHandlerContext links a deadline signal, the request's and the server's shutdown signal
 * through AbortSignal listeners, which costs more than the call (tens of microseconds on Node
 * 20); here each call has one AbortController that the deadline timer, the client going away and
 * the shutdown (through a set of live calls) abort directly.
 */
import type { DescMethod } from "@bufbuild/protobuf";
import { Code, ConnectError, createContextValues, type ContextValues, type HandlerContext } from "@connectrpc/connect";

// Ends each call's signal, as Connect's contexts do. A shared reason, because aborting without one
// builds a DOMException with a stack every call.
export const CALL_ENDED = new ConnectError("the call ended", Code.Canceled);

export interface Call {
  readonly controller: AbortController;
  readonly context: HandlerContext;
  /** Stops the deadline timer, ends the signal, forgets the call. */
  end(): void;
}

export interface CallStart {
  method: DescMethod;
  protocolName: string;
  url: string;
  requestHeader: Headers;
  /** The deadline, from now; undefined for none. */
  timeoutMs: number | undefined;
  /** Why the deadline aborts the call. */
  deadlineError: (timeoutMs: number) => ConnectError;
  values?: ContextValues;
}

/** Starts calls whose signals the server's shutdown aborts. */
export function createCallFactory(shutdownSignal: AbortSignal): (start: CallStart) => Call {
  const live = new Set<AbortController>();
  shutdownSignal.addEventListener("abort", () => {
    for (const c of live) c.abort(shutdownSignal.reason);
  });
  return ({ method, protocolName, url, requestHeader, timeoutMs, deadlineError, values }) => {
    const controller = new AbortController();
    live.add(controller);
    const deadline = timeoutMs === undefined ? undefined : Date.now() + timeoutMs;
    const timer = timeoutMs === undefined ? undefined : setTimeout(() => controller.abort(deadlineError(timeoutMs)), timeoutMs);
    const context: HandlerContext = {
      method,
      service: method.parent,
      requestMethod: "POST",
      protocolName,
      url,
      signal: controller.signal,
      timeoutMs: () => (deadline === undefined ? undefined : deadline - Date.now()),
      requestHeader,
      responseHeader: new Headers(),
      responseTrailer: new Headers(),
      values: values ?? createContextValues(),
    };
    return {
      controller,
      context,
      end() {
        clearTimeout(timer);
        live.delete(controller);
        controller.abort(CALL_ENDED);
      },
    };
  };
}

/** Rejects when the call's signal aborts (its deadline, the client gone, the shutdown). */
export function aborted(call: Call): Promise<never> {
  const { signal } = call.controller;
  return new Promise<never>((_, reject) => signal.addEventListener("abort", () => reject(signal.reason), { once: true }));
}
