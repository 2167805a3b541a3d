/**
 * A signed-in session for one invocation: the profile's API key exchanged for a short-lived
 * bearer token, Connect clients typed from gen/, and names (ORG/PROJECT/ENV keys) resolved to ids.
 */
import { createClient, type Client, type Interceptor } from "@connectrpc/connect";
import { createConnectTransport } from "@connectrpc/connect-node";
import type { DescService } from "@bufbuild/protobuf";
import { AuthService } from "#gen/vane/identity/v1/auth_service_pb.js";
import { IdentityService } from "#gen/vane/identity/v1/identity_service_pb.js";
import type { Environment, Principal, Project } from "#gen/vane/identity/v1/identity_pb.js";
import { activeProfile, readConfig, writeConfig, type Profile } from "./config.ts";
import { UserError, UsageError } from "./errors.ts";

export interface GlobalOptions {
  profile?: string;
  /** Slug or id; "" means the credential's own (overrides the profile's context). */
  organization?: string;
  project?: string;
  output?: string;
}

export interface Session {
  profile: Profile;
  principal: Principal;
  client<S extends DescService>(service: S): Client<S>;
  organizationId(): string;
  project(): Promise<Project>;
  /** `env`: a key or id, else the context's; required. */
  environment(env?: string): Promise<Environment>;
  environments(): Promise<Environment[]>;
}

export function transportFor(url: string, token?: string) {
  const auth: Interceptor = (next) => (req) => {
    if (token) req.header.set("authorization", `Bearer ${token}`);
    return next(req);
  };
  return createConnectTransport({ baseUrl: url.replace(/\/+$/, ""), httpVersion: "1.1", interceptors: [auth] });
}

/** Exchanges `apiKey` at `url`; the token lives for this invocation only. */
export async function exchange(url: string, apiKey: string): Promise<{ accessToken: string; principal: Principal }> {
  const auth = createClient(AuthService, transportFor(url));
  const res = await auth.exchangeApiKey({ apiKey });
  return { accessToken: res.accessToken, principal: res.principal! };
}

/** The context's organization (slug or id), else the credential's own. */
async function organizationId(identity: Client<typeof IdentityService>, wanted: string | undefined, own: string): Promise<string> {
  if (!wanted || wanted === own) return own;
  const { organizations } = await identity.listOrganizations({ pageSize: 200 });
  const found = organizations.find((o) => o.slug === wanted || o.id === wanted);
  if (!found) throw new UserError(`no organization "${wanted}" among yours (${organizations.map((o) => o.slug).join(", ")})`);
  return found.id;
}

/** Signs in with the profile's credential; an OpenID Connect session is refreshed (and stored) when expired. */
export async function signIn(profile: Profile, name: string | undefined): Promise<{ accessToken: string; principal: Principal }> {
  if (profile.apiKey) return exchange(profile.url, profile.apiKey);
  if (!profile.oidc) throw new UserError("the profile has no credential: run vane login");
  const { freshSession } = await import("./oidc.ts");
  const oidc = await freshSession(profile.oidc);
  if (oidc !== profile.oidc && name) {
    const config = await readConfig();
    config.profiles[name] = { ...config.profiles[name], oidc };
    await writeConfig(config);
  }
  const res = await createClient(AuthService, transportFor(profile.url)).exchangeOidcToken({ idToken: oidc.idToken });
  return { accessToken: res.accessToken, principal: res.principal! };
}

export async function openSession(opts: GlobalOptions): Promise<Session> {
  const { profile, name } = await activeProfile(opts.profile);
  const { accessToken, principal } = await signIn(profile, name);
  const transport = transportFor(profile.url, accessToken);
  const identity = createClient(IdentityService, transport);
  const orgId = await organizationId(identity, opts.organization ?? profile.organization ?? process.env.VANE_ORG, principal.organizationId);
  let project: Promise<Project> | undefined;
  let envs: Promise<Environment[]> | undefined;

  const session: Session = {
    profile,
    principal,
    client: (service) => createClient(service, transport),
    organizationId: () => orgId,
    project() {
      project ??= (async () => {
        const wanted = opts.project ?? process.env.VANE_PROJECT ?? profile.project;
        if (principal.projectId && !wanted) return (await identity.getProject({ id: principal.projectId })).project!;
        const { projects } = await identity.listProjects({ organizationId: orgId, pageSize: 200 });
        if (!wanted) {
          if (projects.length === 1) return projects[0];
          const def = projects.find((p) => p.key === "default");
          if (def) return def;
          throw new UsageError(`several projects (${projects.map((p) => p.key).join(", ")}): pick one with --project or vane context use ORG/PROJECT/ENV`);
        }
        const found = projects.find((p) => p.key === wanted || p.id === wanted);
        if (!found) throw new UserError(`no project "${wanted}" in this organization (have: ${projects.map((p) => p.key).join(", ") || "none"})`);
        return found;
      })();
      return project;
    },
    environments() {
      // Sorted by key, so tables and messages read the same every time.
      envs ??= session
        .project()
        .then(async (p) => (await identity.listEnvironments({ projectId: p.id })).environments.sort((a, b) => a.key.localeCompare(b.key)));
      return envs;
    },
    async environment(env) {
      const wanted = env ?? process.env.VANE_ENV ?? profile.environment;
      const all = await session.environments();
      if (!wanted) {
        if (principal.environmentId) return all.find((e) => e.id === principal.environmentId)!;
        throw new UsageError(`which environment? pass --env (one of ${all.map((e) => e.key).join(", ")}) or run vane context use ORG/PROJECT/ENV`);
      }
      const found = all.find((e) => e.key === wanted || e.id === wanted);
      if (!found) throw new UserError(`no environment "${wanted}" in project ${(await session.project()).key} (have: ${all.map((e) => e.key).join(", ")})`);
      return found;
    },
  };
  return session;
}
