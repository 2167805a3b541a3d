/**
 * Which environment a flagd caller gets, and with which credential. By default
 * (`VANE_FLAGD_AUTH=key`) every call carries a credential an unmodified OpenFeature provider can
 * send:
 *
 * 1. a Vane server or client API key as the selector (`Flagd-Selector` header, the providers'
 *    `selector` option, or the deprecated `selector` field of sync requests), exchanged at
 *    identity (flagd/keys.ts); or
 * 2. `Authorization: Bearer <token>` of a server or client key (verified against the JWKS).
 *
 * The key's environment is the call's; a client key sees client-visible flags only; admin and
 * personal keys are refused. Only the `--flagd-file` environment (a local file) is served without
 * a credential. With `VANE_FLAGD_AUTH=none` (a trusted local port only) the old rules apply: a
 * token when present, else a selector naming an environment id (`<id>`, `environment=<id>`,
 * `env=<id>`, `flagSetId=<id>`), else the default environment (`VANE_FLAGD_ENVIRONMENT`, else the
 * file's). In `--flagd-file` mode a selector may also name the file the way flagd users do: its
 * flag set id or its path.
 *
 * An environment the store does not hold is UNAVAILABLE until the initial load is done (it may
 * still arrive), then NOT_FOUND, as flagd answers an unknown selector.
 */
import { Code, ConnectError, type HandlerContext, type Interceptor } from "@connectrpc/connect";
import { ApiKeyKind, principalKey, type TokenVerifier } from "#lib/auth/auth.ts";
import type { EnvironmentState, SnapshotStore } from "../snapshots/store.ts";
import { API_KEY_SELECTOR, type FlagdKeys } from "./keys.ts";
import { failedPrecondition, permissionDenied, unauthenticated, unavailable } from "#lib/process/errors.ts";

/** `key`: a credential on every call (the default); `none`: a trusted port, selectors name environments. */
export type FlagdAuth = "key" | "none";

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
  auth: FlagdAuth;
  /** Whether an environment is served from local flagd files, which need no credential. */
  isLocal?: (environmentId: string) => boolean;
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

/** The selector, unless it is an API key (a credential, not an environment). */
const environmentSelector = (selector: string | undefined) => (selector !== undefined && API_KEY_SELECTOR.test(selector.trim()) ? undefined : selector);

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
    const selector = environmentSelector(header ?? (requestSelector ? requestSelector : undefined));
    const selected = selector === undefined ? undefined : selectedEnvironment(selector);
    if (selector !== undefined && selected === undefined) {
      throw failedPrecondition(`the selector "${selector}" names no environment: send an environment id, or environment=<id>`);
    }
    const p = ctx.values.get(principalKey);
    if (p) {
      if (p.keyKind !== ApiKeyKind.SERVER && p.keyKind !== ApiKeyKind.CLIENT) {
        throw permissionDenied("the flagd ports take server and client keys only");
      }
      if (selected !== undefined && selected !== p.environmentId) {
        throw permissionDenied("the selector names another environment than the key's");
      }
      return { environmentId: p.environmentId, clientOnly: p.keyKind === ApiKeyKind.CLIENT, chosenBy: { token: true } };
    }
    // Without a credential, only the local files' environments are served (key mode).
    const isLocal = (id: string | undefined) => id !== undefined && (opts.isLocal?.(id) ?? false);
    const fallback = opts.defaultEnvironment();
    const environmentId = selected ?? (opts.auth === "none" || isLocal(fallback) ? fallback : undefined);
    if (opts.auth === "key" && environmentId !== undefined && !isLocal(environmentId)) throw credentialNeeded();
    if (selected !== undefined) return { environmentId: selected, clientOnly: false, chosenBy: { selector: selector! } };
    return environmentId === undefined ? undefined : { environmentId, clientOnly: false, chosenBy: { default: true } };
  };
  const credentialNeeded = () =>
    unauthenticated(
      "the flagd ports need a credential: set the provider's selector to a Vane server or client API key (or send Authorization: Bearer <token>)",
    );
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
        if (opts.auth === "key") throw credentialNeeded();
        throw failedPrecondition("no environment selected: send the Flagd-Selector header with an environment id, or set VANE_FLAGD_ENVIRONMENT");
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
    throw unavailable(`environment "${target.environmentId}" is not loaded yet (the evaluator is still loading its configuration); retry shortly`);
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

/**
 * Puts the caller's principal in the call's context: from `Authorization: Bearer <token>`, else
 * (with `keys`) from an API key sent as the `Flagd-Selector` header. Calls with neither pass
 * through; the access rules above decide.
 */
export function createFlagdAuthInterceptor(verifier: TokenVerifier | undefined, keys?: FlagdKeys): Interceptor {
  return (next) => async (req) => {
    const header = req.header.get("authorization");
    if (header) {
      if (!verifier) throw unauthenticated("tokens cannot be verified on this port (no JWKS configured)");
      const m = /^Bearer\s+(\S+)$/i.exec(header);
      if (!m) throw unauthenticated("the Authorization header must be `Bearer <token>`");
      req.contextValues.set(principalKey, await verifier.verify(m[1]));
      return next(req);
    }
    const selector = req.header.get("flagd-selector")?.trim();
    if (keys && selector && API_KEY_SELECTOR.test(selector)) req.contextValues.set(principalKey, await keys.principal(selector));
    return next(req);
  };
}

/** For a sync request's deprecated `selector` field: an API key there authenticates the call too. */
export async function authenticateSelector(ctx: HandlerContext, selector: string | undefined, keys: FlagdKeys | undefined): Promise<void> {
  const s = selector?.trim();
  if (!keys || !s || ctx.values.get(principalKey) || !API_KEY_SELECTOR.test(s)) return;
  ctx.values.set(principalKey, await keys.principal(s));
}
