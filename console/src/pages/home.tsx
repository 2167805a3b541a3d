/** Choose a project and an environment of your organization. */
import { useQuery } from "@connectrpc/connect-query";
import { IdentityService } from "#gen/vane/identity/v1/identity_service_pb.js";
import { describeError } from "../api.ts";
import { href } from "../router.ts";
import { organizationId } from "../session.ts";

function Project({ id, name }: { id: string; name: string }) {
  const envs = useQuery(IdentityService.method.listEnvironments, { projectId: id });
  return (
    <section className="card">
      <h2>{name}</h2>
      {envs.error && <p className="error">{describeError(envs.error)}</p>}
      <ul className="envs">
        {envs.data?.environments.map((e) => (
          <li key={e.id}>
            <a href={href({ page: "flags", projectId: id, environmentId: e.id, query: "" })}>{e.name || e.key}</a>
          </li>
        ))}
      </ul>
    </section>
  );
}

export function HomePage() {
  const projects = useQuery(IdentityService.method.listProjects, { organizationId: organizationId() ?? "" });
  return (
    <main>
      <h1>Projects</h1>
      {projects.isPending && <p>Loading…</p>}
      {projects.error && <p className="error">{describeError(projects.error)}</p>}
      {projects.data?.projects.map((p) => (
        <Project key={p.id} id={p.id} name={p.name || p.key} />
      ))}
    </main>
  );
}
