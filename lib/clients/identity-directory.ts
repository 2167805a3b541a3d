/**
 * Where projects and environments live: identity owns them, services (flags, analytics) ask it.
 * Every lookup is made
 * with the caller's own bearer token, so identity enforces tenancy (a foreign id is NOT_FOUND);
 * the id → (organization, project) mapping is immutable and cached for a minute (so a deleted
 * environment stops accepting writes soon after), and the cached answer is checked against the
 * caller locally with the same rules. An environment's protection can change: changes ask
 * identity afresh (`fresh`), so protecting an environment binds the next change at once.
 */
import { type CallOptions, Code, ConnectError, type Interceptor } from "@connectrpc/connect";
import type { Environment } from "#gen/vane/identity/v1/identity_pb.js";
import { IdentityService } from "#gen/vane/identity/v1/identity_service_pb.js";
import { type Caller, type Principal, requireRole, Role } from "#lib/auth/auth.ts";
import { notFound, unavailable } from "#lib/process/errors.ts";
import { callerOptions, lazyGrpcClient } from "#lib/clients/grpc-client.ts";

/** A project and the organization it belongs to. */
export interface ProjectRef {
  organizationId: string;
  projectId: string;
}

/** An environment, its project and organization. */
export interface EnvironmentRef extends ProjectRef {
  environmentId: string;
  key: string;
  /** Changes there need the admin role (Environment.protected). */
  protected: boolean;
}

/** Options of {@link ProjectDirectory.environment}. */
export interface EnvironmentLookup {
  /** Ask identity even when cached (for changes: protection may have just changed). */
  fresh?: boolean;
}

/** Resolves project and environment ids. */
export interface ProjectDirectory {
  /** The project, or NOT_FOUND when the caller cannot see it. */
  project(id: string, caller: Caller): Promise<ProjectRef>;
  /** The environment, or NOT_FOUND when the caller cannot see it. */
  environment(id: string, caller: Caller, lookup?: EnvironmentLookup): Promise<EnvironmentRef>;
  /** Ids of every environment of a project the caller can see. */
  environments(projectId: string, caller: Caller): Promise<string[]>;
}

/** Options for {@link createIdentityDirectory}. */
export interface IdentityDirectoryOptions {
  /** identity's base URL (gRPC over HTTP/2 cleartext), or a function giving it (tests bind port 0). */
  baseUrl: string | (() => string);
  /** Deadline of each call (default 5 s). */
  timeoutMs?: number;
  /** Extra client interceptors (tracing). */
  interceptors?: Interceptor[];
  /** Cached mappings kept (default 10 000). */
  cacheSize?: number;
  /**
   * How long a cached mapping is trusted (default 60 s): the mapping never changes, but a deleted
   * project or environment must stop accepting writes soon after.
   */
  cacheTtlMs?: number;
}

/** Checks a mapping against the caller, as identity's tenancy does: org, and a key's project. */
export function assertVisible(p: Principal, ref: ProjectRef, what: string): void {
  if (ref.organizationId !== p.organizationId || (p.projectId && p.projectId !== ref.projectId)) throw notFound(what);
}

function toRef(e: Environment): EnvironmentRef {
  return { organizationId: e.organizationId, projectId: e.projectId, environmentId: e.id, key: e.key, protected: e.protected };
}

/** A directory that asks identity (vane.identity.v1.IdentityService) over gRPC. */
export function createIdentityDirectory(opts: IdentityDirectoryOptions): ProjectDirectory {
  const max = opts.cacheSize ?? 10_000;
  const ttl = opts.cacheTtlMs ?? 60_000;
  const projects = new Map<string, { ref: ProjectRef; expires: number }>();
  const envs = new Map<string, { ref: EnvironmentRef; expires: number }>();
  const identity = lazyGrpcClient(IdentityService, opts.baseUrl, opts.interceptors);
  const remember = <T>(cache: Map<string, { ref: T; expires: number }>, id: string, ref: T) => {
    if (cache.size >= max) cache.clear();
    cache.set(id, { ref, expires: Date.now() + ttl });
  };
  const cached = <T>(cache: Map<string, { ref: T; expires: number }>, id: string): T | undefined => {
    const hit = cache.get(id);
    if (hit && hit.expires > Date.now()) return hit.ref;
    if (hit) cache.delete(id);
    return undefined;
  };
  const call = async <T>(caller: Caller, fn: (o: CallOptions) => Promise<T>, what: string): Promise<T> => {
    try {
      return await fn(callerOptions(caller, opts.timeoutMs));
    } catch (err) {
      const e = ConnectError.from(err);
      if (e.code === Code.NotFound) throw notFound(what);
      if (e.code === Code.PermissionDenied || e.code === Code.Unauthenticated || e.code === Code.InvalidArgument) throw e;
      throw new ConnectError(`cannot reach identity to resolve the ${what}; try again`, Code.Unavailable, undefined, undefined, err);
    }
  };
  /** A project or environment: from the cache or identity, then checked against the caller. */
  const resolve = async <T extends ProjectRef>(
    cache: Map<string, { ref: T; expires: number }>,
    id: string,
    caller: Caller,
    what: "project" | "environment",
    fetch: (o: CallOptions) => Promise<T | undefined>,
    fresh = false,
  ): Promise<T> => {
    requireRole(caller.principal, Role.VIEWER);
    let ref = fresh ? undefined : cached(cache, id);
    if (!ref) {
      ref = await call(caller, fetch, what);
      if (!ref) throw unavailable(`identity answered without ${what === "project" ? "a project" : "an environment"}`);
      remember(cache, id, ref);
    }
    assertVisible(caller.principal, ref, what);
    return ref;
  };
  return {
    project: (id, caller) =>
      resolve(projects, id, caller, "project", async (o) => {
        const { project } = await identity().getProject({ id }, o);
        return project && { organizationId: project.organizationId, projectId: project.id };
      }),
    environment: (id, caller, lookup) =>
      resolve(
        envs,
        id,
        caller,
        "environment",
        async (o) => {
          const { environment } = await identity().getEnvironment({ id }, o);
          return environment && toRef(environment);
        },
        lookup?.fresh,
      ),
    async environments(projectId, caller) {
      const { environments } = await call(caller, (o) => identity().listEnvironments({ projectId }, o), "project");
      for (const e of environments) remember(envs, e.id, toRef(e));
      return environments.map((e) => e.id);
    },
  };
}
