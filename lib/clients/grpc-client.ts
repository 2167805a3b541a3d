/**
 * Calls from one service to another on behalf of a caller: a gRPC client whose base URL may only
 * be known once the target listens (tests and `npm start` bind port 0), and per-call options that
 * forward the caller's credential, deadline and cancellation.
 */
import type { DescService } from "@bufbuild/protobuf";
import { type CallOptions, type Client, createClient, type Interceptor } from "@connectrpc/connect";
import { createGrpcTransport } from "@connectrpc/connect-node";
import type { Caller } from "#lib/auth/auth.ts";

/** A client of `service`, built on first use and again whenever the base URL changes. */
export function lazyGrpcClient<S extends DescService>(service: S, baseUrl: string | (() => string), interceptors?: Interceptor[]): () => Client<S> {
  const url = typeof baseUrl === "string" ? () => baseUrl : baseUrl;
  let client: Client<S> | undefined;
  let clientUrl = "";
  return () => {
    const current = url();
    if (!client || current !== clientUrl) {
      client = createClient(service, createGrpcTransport({ baseUrl: current, interceptors }));
      clientUrl = current;
    }
    return client;
  };
}

/** Options of a call made for `caller`: its Authorization header, a deadline, its signal. */
export function callerOptions(caller: Caller, timeoutMs = 5_000): CallOptions {
  const headers = new Headers();
  if (caller.authorization) headers.set("authorization", caller.authorization);
  return { headers, timeoutMs, signal: caller.signal };
}
