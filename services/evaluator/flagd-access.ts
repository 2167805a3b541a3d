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
 * With `VANE_FLAGD_REQUIRE_TOKEN=true`, rule 1 is mandatory.
 */
import { Code, ConnectError, type HandlerContext, type Interceptor } from "@connectrpc/connect";
import { ApiKeyKind, principalKey, type TokenVerifier } from "#lib/auth.ts";

/** The environment a flagd call evaluates. */
export interface FlagdTarget {
  environmentId: string;
  clientOnly: boolean;
}

/** Options for {@link createFlagdAccess}. */
export interface FlagdAccessOptions {
  /** The environment callers without a selector or token get. */
  defaultEnvironment: () => string | undefined;
  requireToken: boolean;
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
    const selected = selector === undefined ? undefined : environmentFromSelector(selector);
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
      return { environmentId: p.environmentId, clientOnly: p.keyKind === ApiKeyKind.CLIENT };
    }
    if (opts.requireToken) throw new ConnectError("this port needs `Authorization: Bearer <token>` of a server or client key", Code.Unauthenticated);
    const environmentId = selected ?? opts.defaultEnvironment();
    return environmentId === undefined ? undefined : { environmentId, clientOnly: false };
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
