/**
 * Which environment a flagd caller gets, and with which credential. flagd providers cannot
 * easily send bearer tokens, so the flagd ports are meant for trusted callers (in-cluster,
 * sidecar, or behind the mesh's authorization), and select the environment by:
 *
 * 1. a token, when `Authorization: Bearer <token>` of a server or client key is present
 *    (verified against identity's JWKS); its environment wins, a selector must agree, and a
 *    client key sees client-visible flags only;
 * 2. the `Flagd-Selector` header (or the deprecated `selector` field of sync requests): an
 *    environment id, or `environment=<id>` / `env=<id>` / `flagSetId=<id>` among comma-separated
 *    pairs;
 * 3. the default environment (`VANE_FLAGD_ENVIRONMENT`, else the `--flagd-file` environment).
 *
 * With `VANE_FLAGD_REQUIRE_TOKEN=true`, rule 1 is mandatory. In `--flagd-file` mode a selector
 * may also name the file the way flagd users do: its flag set id or its path.
 *
 * An environment the store does not hold is UNAVAILABLE until the initial load is done (it may
 * still arrive), then NOT_FOUND, as flagd answers an unknown selector.
 */
import { Code, ConnectError, type HandlerContext, type Interceptor } from "@connectrpc/connect";
import { ApiKeyKind, principalKey, type TokenVerifier } from "#lib/auth/auth.ts";
import type { EnvironmentState, SnapshotStore } from "../snapshots/store.ts";

/** The environment a flagd call evaluates. */
export interface FlagdTarget {
  environmentId: string;
  clientOnly: boolean;
  /** What chose the environment, for error messages: a key's token, the selector sent, or the default. */
  chosenBy: { token: true } | { selector: string } | { default: true };
}

/** Options for {@link createFlagdAccess}. */
export interface FlagdAccessOptions {
  /** The environment callers without a selector or token get. */
  defaultEnvironment: () => string | undefined;
  requireToken: boolean;
  /** The environment another name stands for (the flagd file's flag set id or path), if any. */
  alias?: (name: string) => string | undefined;
}

/** Resolves flagd callers to environments. */
export interface FlagdAccess {
  /** The target, or a ConnectError saying what to send. */
  target(ctx: HandlerContext, requestSelector?: string): FlagdTarget;
  /** Like `target`, but undefined instead of an error when nothing selects an environment. */
  optionalTarget(ctx: HandlerContext, requestSelector?: string): FlagdTarget | undefined;
}

/** Reads the environment id out of a flagd selector. */
export function environmentFromSelector(selector: string): string | undefined {
  const s = selector.trim();
  if (s === "") return undefined;
  if (!s.includes("=")) return s;
  for (const pair of s.split(",")) {
    const eq = pair.indexOf("=");
    const key = pair.slice(0, eq).trim().toLowerCase();
    if (["environment", "env", "environmentid", "flagsetid"].includes(key)) return pair.slice(eq + 1).trim() || undefined;
  }
  return undefined;
}

/** Creates the resolver. */
export function createFlagdAccess(opts: FlagdAccessOptions): FlagdAccess {
  const resolve = (ctx: HandlerContext, requestSelector: string | undefined): FlagdTarget | undefined => {
    const header = ctx.requestHeader.get("flagd-selector");
    const selector = header ?? (requestSelector ? requestSelector : undefined);
    const selected = selector === undefined ? undefined : selectedEnvironment(selector);
    if (selector !== undefined && selected === undefined) {
      throw new ConnectError(`the selector "${selector}" names no environment: send an environment id, or environment=<id>`, Code.FailedPrecondition);
    }
    const p = ctx.values.get(principalKey);
    if (p) {
      if (p.keyKind !== ApiKeyKind.SERVER && p.keyKind !== ApiKeyKind.CLIENT) {
        throw new ConnectError("the flagd ports take server and client keys only", Code.PermissionDenied);
      }
      if (selected !== undefined && selected !== p.environmentId) {
        throw new ConnectError("the selector names another environment than the key's", Code.PermissionDenied);
      }
      return { environmentId: p.environmentId, clientOnly: p.keyKind === ApiKeyKind.CLIENT, chosenBy: { token: true } };
    }
    if (opts.requireToken) throw new ConnectError("this port needs `Authorization: Bearer <token>` of a server or client key", Code.Unauthenticated);
    if (selector !== undefined && selected !== undefined) return { environmentId: selected, clientOnly: false, chosenBy: { selector } };
    const environmentId = opts.defaultEnvironment();
    return environmentId === undefined ? undefined : { environmentId, clientOnly: false, chosenBy: { default: true } };
  };
  // A path may contain "=", so the whole selector is tried as an alias before it is parsed.
  const selectedEnvironment = (selector: string): string | undefined => {
    const whole = opts.alias?.(selector.trim());
    if (whole !== undefined) return whole;
    const id = environmentFromSelector(selector);
    return id === undefined ? undefined : (opts.alias?.(id) ?? id);
  };
  return {
    target(ctx, requestSelector) {
      const t = resolve(ctx, requestSelector);
      if (!t) {
        throw new ConnectError(
          "no environment selected: send the Flagd-Selector header with an environment id, or set VANE_FLAGD_ENVIRONMENT",
          Code.FailedPrecondition,
        );
      }
      return t;
    },
    optionalTarget: resolve,
  };
}

/** The target's environment, or UNAVAILABLE (not loaded yet) / NOT_FOUND (unknown) saying why. */
export function targetState(store: SnapshotStore, target: FlagdTarget): EnvironmentState {
  const s = store.get(target.environmentId);
  if (s) return s;
  if (!store.initialLoadDone) {
    throw new ConnectError(`environment "${target.environmentId}" is not loaded yet (the evaluator is still loading its configuration); retry shortly`, Code.Unavailable);
  }
  throw unknownEnvironment(target);
}

/** NOT_FOUND for an environment the evaluator does not hold after its initial load. */
export function unknownEnvironment(target: FlagdTarget): ConnectError {
  const id = target.environmentId;
  const c = target.chosenBy;
  const message =
    "selector" in c
      ? `the selector "${c.selector}" names environment "${id}", which is unknown: the selector must be an environment id (or environment=<id>) of an environment this evaluator serves`
      : "token" in c
        ? `the key's environment "${id}" is unknown (deleted?): create a key for an existing environment`
        : `the default environment "${id}" is unknown: set VANE_FLAGD_ENVIRONMENT to the id of an existing environment, or send Flagd-Selector`;
  return new ConnectError(message, Code.NotFound);
}

/** Verifies a bearer token when one is present; calls without one pass through. */
export function createOptionalAuthInterceptor(verifier: TokenVerifier | undefined): Interceptor {
  return (next) => async (req) => {
    const header = req.header.get("authorization");
    if (!header) return next(req);
    if (!verifier) throw new ConnectError("tokens cannot be verified on this port (no JWKS configured)", Code.Unauthenticated);
    const m = /^Bearer\s+(\S+)$/i.exec(header);
    if (!m) throw new ConnectError("the Authorization header must be `Bearer <token>`", Code.Unauthenticated);
    req.contextValues.set(principalKey, await verifier.verify(m[1]));
    return next(req);
  };
}
