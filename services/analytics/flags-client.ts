/**
 * The analytics service's view of the flags service: read a flag, replace its configuration in an
 * environment. Every call carries the caller's own bearer token, so flags applies the caller's
 * roles and tenancy and records the caller in its audit log. Injected, so tests can run the real
 * flags module in the same process.
 */
import type { MessageInitShape } from "@bufbuild/protobuf";
import type { Interceptor } from "@connectrpc/connect";
import {
  FlagService,
  type GetFlagRequestSchema,
  type GetFlagResponse,
  type UpdateFlagEnvironmentRequestSchema,
  type UpdateFlagEnvironmentResponse,
} from "#gen/vane/flags/v1/flag_service_pb.js";
import { callerOptions, lazyGrpcClient } from "#lib/clients/grpc-client.ts";
import type { Caller } from "#lib/auth/auth.ts";

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
  const flags = lazyGrpcClient(FlagService, opts.baseUrl, opts.interceptors);
  const options = (caller: Caller) => callerOptions(caller, opts.timeoutMs);
  return {
    getFlag: (req, caller) => flags().getFlag(req, options(caller)),
    updateFlagEnvironment: (req, caller) => flags().updateFlagEnvironment(req, options(caller)),
  };
}
