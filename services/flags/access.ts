/**
 * Who may do what, and the helpers every RPC shares: resolving the caller's project or
 * environment through the directory (tenancy), running a mutation under the project's lock, and
 * optimistic-concurrency checks.
 *
 * Changes come in two kinds. A change in one environment (its targeting) is refused to an admin
 * key of another environment before any lookup, and needs the admin role in a protected
 * environment (asked of identity afresh, so a new protection binds at once). A change shared by
 * every environment (a flag's definition, a segment edit) is refused to every admin key, since
 * each is bound to one environment; creating a flag or segment is not, as no environment uses
 * it yet. The README's "Identity and tenancy" has the whole table.
 */
import { Code, ConnectError, type HandlerContext } from "@connectrpc/connect";
import { VersionConflictSchema } from "#gen/vane/flags/v1/errors_pb.js";
import {
  type Principal,
  requireChangeIn,
  requireEnvironmentScope,
  requirePrincipal,
  requireProjectWide,
  requireRole,
  Role,
  roleIncludes,
} from "#lib/auth/auth.ts";
import { isUniqueViolation, withTransaction } from "#lib/data/db.ts";
import { alreadyExists } from "#lib/process/errors.ts";
import type { Caller } from "#lib/auth/auth.ts";
import type { EnvironmentRef, ProjectDirectory, ProjectRef } from "#lib/clients/identity-directory.ts";
import { type Db, lockProject, type OutboxTargets, type Trx } from "./store.ts";

/** What the flags and segment services are built from. */
export interface FlagsDeps {
  db: Db;
  directory: ProjectDirectory;
  targets: OutboxTargets;
}

/** The caller of an RPC, to forward to identity. */
export function callerOf(ctx: HandlerContext): Caller {
  return { principal: requirePrincipal(ctx), authorization: ctx.requestHeader.get("authorization"), signal: ctx.signal };
}

/** What a project-level change (role editor or above) does to the project's environments. */
export type ProjectChange =
  /** Reaches every environment (a flag's definition, a segment edit): not with an admin key. */
  | "shared"
  /** Adds what no environment uses yet (a new flag or segment): admin keys too. */
  | "additive"
  /** The handler checks each environment it changes ({@link environmentForChange}). */
  | "per-environment";

/**
 * Role first (refused before any lookup), then the project through identity (NOT_FOUND if
 * foreign). A change is "shared" unless the handler says otherwise.
 */
export async function inProject(
  deps: FlagsDeps,
  ctx: HandlerContext,
  projectId: string,
  role: Role,
  change: ProjectChange = "shared",
): Promise<{ p: Principal; caller: Caller; scope: ProjectRef }> {
  const caller = callerOf(ctx);
  requireRole(caller.principal, role);
  if (roleIncludes(role, Role.EDITOR) && change === "shared") requireProjectWide(caller.principal, `call ${ctx.method.name}`);
  const scope = await deps.directory.project(projectId, caller);
  return { p: caller.principal, caller, scope };
}

/**
 * Role first, then the environment through identity. For a change (role editor or above): an
 * admin key of another environment is refused before the lookup, and a protected environment
 * needs the admin role.
 */
export async function inEnvironment(
  deps: FlagsDeps,
  ctx: HandlerContext,
  environmentId: string,
  role: Role,
): Promise<{ p: Principal; caller: Caller; env: EnvironmentRef }> {
  const caller = callerOf(ctx);
  requireRole(caller.principal, role);
  const env = roleIncludes(role, Role.EDITOR)
    ? await environmentForChange(deps, caller, environmentId)
    : await deps.directory.environment(environmentId, caller);
  return { p: caller.principal, caller, env };
}

/** An environment the caller is about to change: in its key's scope, and protection honoured. */
export async function environmentForChange(deps: FlagsDeps, caller: Caller, environmentId: string): Promise<EnvironmentRef> {
  requireEnvironmentScope(caller.principal, environmentId);
  const env = await deps.directory.environment(environmentId, caller, { fresh: true });
  requireChangeIn(caller.principal, env);
  return env;
}

/**
 * Runs a mutation in a transaction holding the project's lock; a unique violation is
 * ALREADY_EXISTS. `signal` is the RPC's (ctx.signal, aborted when the caller's deadline passes or
 * it goes away): checked right before COMMIT, so a change the caller has given up on rolls back
 * instead of landing after the caller was told it failed.
 */
export async function mutate<T>(deps: FlagsDeps, projectId: string, what: string, signal: AbortSignal | undefined, fn: (trx: Trx) => Promise<T>): Promise<T> {
  try {
    return await withTransaction(
      deps.db,
      async (trx) => {
        await lockProject(trx, projectId);
        const result = await fn(trx);
        if (signal?.aborted) throw deadlinePassed(signal);
        return result;
      },
      { signal },
    );
  } catch (err) {
    if (isUniqueViolation(err)) throw alreadyExists(what);
    throw err;
  }
}

/** What a mutation throws when its caller's deadline passed (or the caller went away) before COMMIT. */
function deadlinePassed(signal: AbortSignal): ConnectError {
  const code = ConnectError.from(signal.reason).code === Code.Canceled ? Code.Canceled : Code.DeadlineExceeded;
  return new ConnectError("the deadline passed before the change committed; nothing was changed", code, undefined, undefined, signal.reason);
}

/**
 * ABORTED unless the stored version is the expected one; the message and a VersionConflict detail
 * carry the current version.
 */
export function expectVersion(what: string, current: bigint, expected: bigint): void {
  if (current !== expected) {
    throw new ConnectError(`${what} is at version ${current}, not ${expected}: reload it and retry`, Code.Aborted, undefined, [
      { desc: VersionConflictSchema, value: { resource: what, expectedVersion: expected, currentVersion: current } },
    ]);
  }
}

export { requireProjectWide, Role };
