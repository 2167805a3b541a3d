/**
 * The analytics service's view of the flags service: read a flag, replace its configuration in an
 * environment. Every call carries the caller's own bearer token, so flags applies the caller's
 * roles and tenancy and records the caller in its audit log. Injected, so tests can run the real
 * flags module in the same process.
 */
import type { MessageInitShape } from "@bufbuild/protobuf";
import { createClient, type Interceptor } from "@connectrpc/connect";
import { createGrpcTransport } from "@connectrpc/connect-node";
import {
  FlagService,
  type GetFlagRequestSchema,
  type GetFlagResponse,
  type UpdateFlagEnvironmentRequestSchema,
  type UpdateFlagEnvironmentResponse,
} from "#gen/vane/flags/v1/flag_service_pb.js";
import type { Caller } from "#lib/identity-directory.ts";

/** The two flags RPCs analytics uses, on behalf of a caller. */
export interface FlagsClient {
  getFlag(req: MessageInitShape<typeof GetFlagRequestSchema>, caller: Caller): Promise<GetFlagResponse>;
  updateFlagEnvironment(req: MessageInitShape<typeof UpdateFlagEnvironmentRequestSchema>, caller: Caller): Promise<UpdateFlagEnvironmentResponse>;
}

/** Options for {@link createRemoteFlagsClient}. */
export interface RemoteFlagsClientOptions {
  /** flags' base URL (gRPC), or a function giving it (tests and `npm start` bind port 0). */
  baseUrl: string | (() => string);
  /** Deadline of each call (default 5 s). */
  timeoutMs?: number;
  interceptors?: Interceptor[];
}

/** A FlagsClient over gRPC that forwards the caller's Authorization header. */
export function createRemoteFlagsClient(opts: RemoteFlagsClientOptions): FlagsClient {
  const baseUrl = typeof opts.baseUrl === "string" ? () => opts.baseUrl as string : opts.baseUrl;
  let client: ReturnType<typeof createClient<typeof FlagService>> | undefined;
  let clientUrl = "";
  const flags = () => {
    const url = baseUrl();
    if (!client || url !== clientUrl) {
      client = createClient(FlagService, createGrpcTransport({ baseUrl: url, interceptors: opts.interceptors }));
      clientUrl = url;
    }
    return client;
  };
  const options = (caller: Caller) => {
    const headers = new Headers();
    if (caller.authorization) headers.set("authorization", caller.authorization);
    return { headers, timeoutMs: opts.timeoutMs ?? 5_000, signal: caller.signal };
  };
  return {
    getFlag: (req, caller) => flags().getFlag(req, options(caller)),
    updateFlagEnvironment: (req, caller) => flags().updateFlagEnvironment(req, options(caller)),
  };
}
