/**
 * Authentication and authorization for every service. Identity signs short-lived JWTs; every
 * other service verifies them locally against identity's JWKS (fetched and cached by jose), so
 * identity is never on another service's hot path.
 */
import { create } from "@bufbuild/protobuf";
import { Code, ConnectError, createContextKey, type HandlerContext, type Interceptor } from "@connectrpc/connect";
import { createLocalJWKSet, createRemoteJWKSet, errors as joseErrors, type JWTPayload, type JWTVerifyGetKey, jwtVerify } from "jose";
import { ApiKeyKind, type Principal, PrincipalSchema, Role } from "#gen/vane/identity/v1/identity_pb.js";

export { ApiKeyKind, Role, type Principal };

/** The only signature algorithm Vane issues and accepts (rejects `none` and HMAC confusion). */
export const TOKEN_ALGORITHM = "ES256";
/** The audience every Vane access token carries. */
export const TOKEN_AUDIENCE = "vane";

/** Claims of a Vane access token beyond the registered ones. */
export interface VaneClaims extends JWTPayload {
  org?: string;
  prj?: string;
  env?: string;
  role?: string;
  kind?: string;
}

const roleNames: Record<string, Role> = {
  viewer: Role.VIEWER,
  editor: Role.EDITOR,
  admin: Role.ADMIN,
  owner: Role.OWNER,
};
const kindNames: Record<string, ApiKeyKind> = {
  server: ApiKeyKind.SERVER,
  client: ApiKeyKind.CLIENT,
  admin: ApiKeyKind.ADMIN,
  personal: ApiKeyKind.PERSONAL,
};

/** The claim value for a role. */
export function roleClaim(role: Role): string {
  return Object.entries(roleNames).find(([, r]) => r === role)?.[0] ?? "none";
}
/** The claim value for a key kind ("user" for a person's session). */
export function kindClaim(kind: ApiKeyKind): string {
  return Object.entries(kindNames).find(([, k]) => k === kind)?.[0] ?? "user";
}

/** Turns verified claims into a Principal. */
export function principalFromClaims(claims: VaneClaims): Principal {
  return create(PrincipalSchema, {
    subject: claims.sub ?? "",
    organizationId: claims.org ?? "",
    projectId: claims.prj ?? "",
    environmentId: claims.env ?? "",
    role: roleNames[claims.role ?? ""] ?? Role.UNSPECIFIED,
    keyKind: kindNames[claims.kind ?? ""] ?? ApiKeyKind.UNSPECIFIED,
  });
}

/** Verifies access tokens. */
export interface TokenVerifier {
  verify(token: string): Promise<Principal>;
}

/** Options for {@link createTokenVerifier}. */
export interface TokenVerifierOptions {
  issuer: string;
  /** The key source: identity's in-process key set, or {@link remoteKeySet}. */
  keys: JWTVerifyGetKey;
  /** Tolerated clock skew in seconds. */
  clockToleranceSec?: number;
}

/** Options for {@link remoteKeySet}; the defaults suit production. */
export interface RemoteKeySetOptions {
  /** Refetch the JWKS once the cached copy is this old (default 10 min). */
  cacheMaxAgeMs?: number;
  /** At most one refetch for unknown `kid`s per this long, so forged kids cannot flood identity (default 30 s). */
  cooldownMs?: number;
  /** Give up on a fetch after this long (default 5 s). */
  timeoutMs?: number;
  /** After a failed fetch, verify with the keys last fetched for this long before trying again (default 30 s). */
  retryAfterMs?: number;
  /** Told when a fetch fails and the keys last fetched are used instead. */
  onStale?: (err: unknown) => void;
}

/**
 * A JWKS fetched over HTTP (jose's remote key set), cached, and refetched when an unknown `kid`
 * appears, so a new signing key is picked up on its first token. A key identity stops publishing
 * stops verifying here at the next refetch: at most `cacheMaxAgeMs` later, usually sooner since
 * tokens from the new key trigger one.
 *
 * When identity cannot be reached, tokens keep being verified with the keys last fetched (jose
 * alone would refuse every token once its cache is old), and fetching is retried only every
 * `retryAfterMs`, so an outage neither stalls each call on a fetch nor floods identity.
 */
export function remoteKeySet(url: string, options: RemoteKeySetOptions = {}): JWTVerifyGetKey {
  const remote = createRemoteJWKSet(new URL(url), {
    cacheMaxAge: options.cacheMaxAgeMs ?? 10 * 60_000,
    cooldownDuration: options.cooldownMs ?? 30_000,
    timeoutDuration: options.timeoutMs ?? 5_000,
  });
  const retryAfterMs = options.retryAfterMs ?? 30_000;
  let failedAt = Number.NEGATIVE_INFINITY;
  const lastFetched = () => {
    const jwks = remote.jwks();
    return jwks ? createLocalJWKSet(jwks) : undefined;
  };
  return async (header, token) => {
    const stale = Date.now() - failedAt < retryAfterMs ? lastFetched() : undefined;
    if (stale) return stale(header, token);
    try {
      return await remote(header, token);
    } catch (err) {
      // Lookup errors are answers; anything else is the fetch failing.
      if (err instanceof joseErrors.JWKSNoMatchingKey || err instanceof joseErrors.JWKSMultipleMatchingKeys) throw err;
      const fallback = lastFetched();
      if (!fallback) throw err;
      failedAt = Date.now();
      options.onStale?.(err);
      return fallback(header, token);
    }
  };
}

/** Creates a verifier that accepts only ES256 tokens from `issuer` for the Vane audience. */
export function createTokenVerifier(opts: TokenVerifierOptions): TokenVerifier {
  return {
    async verify(token) {
      try {
        const { payload } = await jwtVerify<VaneClaims>(token, opts.keys, {
          issuer: opts.issuer,
          audience: TOKEN_AUDIENCE,
          algorithms: [TOKEN_ALGORITHM],
          clockTolerance: opts.clockToleranceSec ?? 5,
          requiredClaims: ["sub", "exp", "iat"],
        });
        return principalFromClaims(payload);
      } catch (err) {
        throw new ConnectError(describeTokenError(err), Code.Unauthenticated, undefined, undefined, err);
      }
    },
  };
}

function describeTokenError(err: unknown): string {
  if (err instanceof joseErrors.JWTExpired) return "the access token has expired; exchange your credential for a new one";
  if (err instanceof joseErrors.JWTClaimValidationFailed) return `the access token is not valid here (${err.claim})`;
  if (err instanceof joseErrors.JWKSNoMatchingKey) return "the access token was signed by an unknown key";
  if (err instanceof joseErrors.JOSEAlgNotAllowed) return "the access token uses a signature algorithm Vane does not accept";
  if (err instanceof joseErrors.JWKSTimeout || err instanceof joseErrors.JOSEError === false) {
    return "the access token could not be verified right now";
  }
  return "the access token is invalid";
}

/** The verified caller, set by the auth interceptor; undefined on public procedures. */
export const principalKey = createContextKey<Principal | undefined>(undefined, { description: "vane principal" });

/** The caller of this call, or UNAUTHENTICATED. */
export function requirePrincipal(ctx: HandlerContext): Principal {
  const p = ctx.values.get(principalKey);
  if (!p) throw new ConnectError("this call needs an access token: send `Authorization: Bearer <token>`", Code.Unauthenticated);
  return p;
}

/** Options for {@link createAuthInterceptor}. */
export interface AuthInterceptorOptions {
  verifier: TokenVerifier;
  /** Procedures (`/pkg.Service/Method`) or whole services (`pkg.Service`) open to anyone. */
  publicProcedures?: Iterable<string>;
}

/** Always public: health checks and server reflection. */
const alwaysPublic = ["grpc.health.v1.Health", "grpc.reflection.v1.ServerReflection", "grpc.reflection.v1alpha.ServerReflection"];

/** Verifies the bearer token of every non-public call and puts the principal in the context. */
export function createAuthInterceptor(opts: AuthInterceptorOptions): Interceptor {
  const open = new Set([...alwaysPublic, ...(opts.publicProcedures ?? [])]);
  return (next) => async (req) => {
    const header = req.header.get("authorization");
    const isPublic = open.has(req.service.typeName) || open.has(`/${req.service.typeName}/${req.method.name}`);
    if (!header) {
      if (isPublic) return next(req);
      throw new ConnectError("this call needs an access token: send `Authorization: Bearer <token>`", Code.Unauthenticated);
    }
    const m = /^Bearer\s+(\S+)$/i.exec(header);
    if (!m) throw new ConnectError("the Authorization header must be `Bearer <token>`", Code.Unauthenticated);
    req.contextValues.set(principalKey, await opts.verifier.verify(m[1]));
    return next(req);
  };
}

const roleRank: Record<Role, number> = {
  [Role.UNSPECIFIED]: 0,
  [Role.VIEWER]: 1,
  [Role.EDITOR]: 2,
  [Role.ADMIN]: 3,
  [Role.OWNER]: 4,
};

/** True when `role` includes `min` (each role includes the ones below it). */
export function roleIncludes(role: Role, min: Role): boolean {
  return roleRank[role] >= roleRank[min];
}

/** True when the principal's role includes `role`. */
export function hasRole(p: Principal, role: Role): boolean {
  return roleIncludes(p.role, role);
}

/**
 * Management calls need a person (user or personal key) or an admin key, with at least `role`.
 * Server and client keys are for evaluation and events only.
 */
export function requireRole(p: Principal, role: Role): void {
  if (p.keyKind === ApiKeyKind.SERVER || p.keyKind === ApiKeyKind.CLIENT) {
    throw new ConnectError("server and client keys cannot call the management API; use an admin or personal key", Code.PermissionDenied);
  }
  if (!hasRole(p, role)) {
    throw new ConnectError(`this needs the ${roleClaim(role)} role or higher`, Code.PermissionDenied);
  }
}

/**
 * An admin key: bound to one environment (the `env` claim), it changes nothing outside it. A
 * person (session or personal key) acts with their role across the organization.
 */
export function isEnvironmentScoped(p: Principal): boolean {
  return p.keyKind === ApiKeyKind.ADMIN && p.environmentId !== "";
}

/**
 * Changes shared by every environment of a project (flag definitions, segment edits, the
 * environments themselves) are refused to environment-scoped keys, before any lookup.
 */
export function requireProjectWide(p: Principal, what: string): void {
  if (isEnvironmentScoped(p)) {
    throw new ConnectError(
      `an admin key is bound to one environment and cannot ${what}, which reaches every environment of the project; use a personal key`,
      Code.PermissionDenied,
    );
  }
}

/** Before any lookup: an environment-scoped key changes only its own environment. */
export function requireEnvironmentScope(p: Principal, environmentId: string): void {
  if (isEnvironmentScoped(p) && p.environmentId !== environmentId) {
    throw new ConnectError(
      `this admin key is bound to environment ${p.environmentId} and cannot change environment ${environmentId}; use an admin key of that environment or a personal key`,
      Code.PermissionDenied,
    );
  }
}

/** What the protection check needs to know of an environment. */
export interface ProtectedEnvironment {
  environmentId: string;
  key: string;
  protected: boolean;
}

/**
 * The caller may change `env`: inside an environment-scoped key's environment, and with the
 * admin role or higher when the environment is protected.
 */
export function requireChangeIn(p: Principal, env: ProtectedEnvironment): void {
  requireEnvironmentScope(p, env.environmentId);
  if (env.protected && !hasRole(p, Role.ADMIN)) {
    throw new ConnectError(`environment "${env.key}" is protected: changes there need the admin role or higher; ask an admin`, Code.PermissionDenied);
  }
}

/** The caller, as services forward it to identity and to each other. */
export interface Caller {
  principal: Principal;
  /** The caller's `Authorization` header, forwarded to identity (and to other services). */
  authorization: string | null;
  signal?: AbortSignal;
}
