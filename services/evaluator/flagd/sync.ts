/**
 * flagd.sync.v1.FlagSyncService on port 8015: the whole flag set of the selected environment
 * as flagd flag-definition JSON, for in-process providers (which evaluate locally with
 * flagd-core) and for flagd itself pointed at Vane as a grpc sync source.
 */
import { create } from "@bufbuild/protobuf";
import type { ServiceImpl } from "@connectrpc/connect";
import {
  FetchAllFlagsResponseSchema,
  FlagSyncService,
  GetMetadataResponseSchema,
  SyncFlagsResponseSchema,
  type SyncFlagsResponse,
} from "#gen/flagd/sync/v1/sync_pb.js";
import { shareMessage } from "#lib/server/shared-frames.ts";
import type { ChangeHub } from "../snapshots/change-hub.ts";
import { structOf } from "../evaluate.ts";
import { authenticateSelector, targetState, unknownEnvironment, type FlagdAccess } from "./access.ts";
import type { FlagdKeys } from "./keys.ts";
import type { EnvironmentState, SnapshotStore } from "../snapshots/store.ts";

/** Dependencies of {@link createFlagdSyncService}. */
export interface FlagdSyncDeps {
  store: SnapshotStore;
  hub: ChangeHub;
  access: FlagdAccess;
  /** API keys as selectors (VANE_FLAGD_AUTH=key), also in the deprecated `selector` field. */
  keys?: FlagdKeys;
  onStream?: () => () => void;
  /** flagd's `--context-value` (drop-in mode): sent as sync context, which in-process providers lay over each evaluation's context. */
  staticContext?: Readonly<Record<string, unknown>>;
}

/** The FlagSyncService implementation. */
export function createFlagdSyncService(deps: FlagdSyncDeps): ServiceImpl<typeof FlagSyncService> {
  // flagd providers replace their whole flag set with each message (flagd's sync protocol has no
  // deltas), so every stream gets the full flag set; it is built once per version and key kind,
  // not once per stream.
  const messages = new WeakMap<EnvironmentState, { all?: SyncFlagsResponse; client?: SyncFlagsResponse }>();
  const messageOf = (state: EnvironmentState, clientOnly: boolean): SyncFlagsResponse => {
    let built = messages.get(state);
    if (!built) messages.set(state, (built = {}));
    const make = () =>
      shareMessage(create(SyncFlagsResponseSchema, { flagConfiguration: state.flagdJson(clientOnly), syncContext: syncContextOf(state, deps.staticContext) }));
    return clientOnly ? (built.client ??= make()) : (built.all ??= make());
  };
  return {
    async *syncFlags(req, ctx) {
      await authenticateSelector(ctx, req.selector, deps.keys);
      const target = deps.access.target(ctx, req.selector);
      // An unknown environment fails at once, so the provider reports it instead of timing out.
      const loaded = await deps.hub.loaded(target.environmentId, ctx.signal);
      if (loaded === "aborted") return;
      if (loaded === "unknown") throw unknownEnvironment(target);
      const closeStream = deps.onStream?.();
      const changes = deps.hub.follow(target.environmentId, ctx.signal);
      try {
        let sent: EnvironmentState | undefined;
        for (;;) {
          const state = deps.store.get(target.environmentId);
          if (state && state !== sent) {
            sent = state;
            yield messageOf(state, target.clientOnly);
          }
          if ((await changes.next()) === undefined) return;
        }
      } finally {
        changes.close();
        closeStream?.();
      }
    },
    async fetchAllFlags(req, ctx) {
      await authenticateSelector(ctx, req.selector, deps.keys);
      const target = deps.access.target(ctx, req.selector);
      return create(FetchAllFlagsResponseSchema, { flagConfiguration: targetState(deps.store, target).flagdJson(target.clientOnly) });
    },
    getMetadata(_req, ctx) {
      const target = deps.access.target(ctx);
      return create(GetMetadataResponseSchema, { metadata: structOf(targetState(deps.store, target).flags.metadata) });
    },
  };
}

/** The flag set's metadata with the static context values over it; undefined when both are empty. */
function syncContextOf(state: EnvironmentState, staticContext: Readonly<Record<string, unknown>> | undefined) {
  const merged = { ...state.flags.metadata, ...staticContext };
  return Object.keys(merged).length > 0 ? structOf(merged) : undefined;
}
