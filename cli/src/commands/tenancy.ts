/** orgs, projects, envs, members, keys. */
import type { Command } from "commander";
import { IdentityService } from "#gen/vane/identity/v1/identity_service_pb.js";
import { ApiKeyKind, Role } from "#gen/vane/identity/v1/identity_pb.js";
import { emit, paint, parseFormat, printTable } from "../output.ts";
import { openSession, type GlobalOptions } from "../session.ts";
import { age, enumName, enumValue, iso } from "../shapes.ts";

async function setup(cmd: Command) {
  const opts = cmd.optsWithGlobals<GlobalOptions & { env?: string; all?: boolean; kind?: string }>();
  const session = await openSession(opts);
  return { opts, format: parseFormat(opts.output), session, identity: session.client(IdentityService) };
}

export async function orgs(cmd: Command): Promise<void> {
  const { format, identity } = await setup(cmd);
  const { organizations } = await identity.listOrganizations({ pageSize: 200 });
  const data = organizations.map((o) => ({ id: o.id, slug: o.slug, name: o.name, createTime: iso(o.createTime) }));
  await emit(format, data, () =>
    printTable(
      ["slug", "name", "id"],
      data.map((o) => [o.slug, o.name, o.id]),
    ),
  );
}

export async function projects(cmd: Command): Promise<void> {
  const { format, identity, session } = await setup(cmd);
  const res = await identity.listProjects({ organizationId: session.organizationId(), pageSize: 200 });
  const data = res.projects.map((p) => ({ id: p.id, key: p.key, name: p.name, createTime: iso(p.createTime) }));
  await emit(format, data, () =>
    printTable(
      ["key", "name", "id"],
      data.map((p) => [p.key, p.name, p.id]),
    ),
  );
}

export async function envs(cmd: Command): Promise<void> {
  const { format, session } = await setup(cmd);
  const data = (await session.environments()).map((e) => ({ id: e.id, key: e.key, name: e.name, protected: e.protected }));
  await emit(format, data, () =>
    printTable(
      ["key", "name", "protected", "id"],
      data.map((e) => [e.key, e.name, e.protected ? paint("yellow", "yes") : "no", e.id]),
    ),
  );
}

export async function members(cmd: Command): Promise<void> {
  const { format, identity, session } = await setup(cmd);
  const res = await identity.listMembers({ organizationId: session.organizationId(), pageSize: 200 });
  const data = res.members.map((m) => ({ id: m.id, email: m.email, role: enumName(Role, m.role), createTime: iso(m.createTime) }));
  await emit(format, data, () =>
    printTable(
      ["email", "role", "id"],
      data.map((m) => [m.email, m.role, m.id]),
    ),
  );
}

export async function keysList(cmd: Command): Promise<void> {
  const { opts, format, identity, session } = await setup(cmd);
  const env = await session.environment(opts.env);
  const { apiKeys } = await identity.listApiKeys({ environmentId: env.id, includeRevoked: Boolean(opts.all) });
  const data = apiKeys.map((k) => ({
    id: k.id,
    name: k.name,
    kind: enumName(ApiKeyKind, k.kind),
    prefix: k.prefix,
    createTime: iso(k.createTime),
    lastUsedTime: iso(k.lastUsedTime),
    revokeTime: iso(k.revokeTime),
  }));
  await emit(format, data, () =>
    printTable(
      ["name", "kind", "prefix", "created", "last used", "id"],
      apiKeys.map((k) => [
        k.revokeTime ? paint("strikethrough", k.name) : k.name,
        enumName(ApiKeyKind, k.kind),
        k.prefix,
        age(k.createTime),
        age(k.lastUsedTime),
        k.id,
      ]),
    ),
  );
}

export async function keysCreate(cmd: Command): Promise<void> {
  const { opts, format, identity, session } = await setup(cmd);
  const env = await session.environment(opts.env);
  const res = await identity.createApiKey({ environmentId: env.id, kind: enumValue(ApiKeyKind, opts.kind!), name: cmd.args[0] });
  const data = { id: res.apiKey!.id, name: res.apiKey!.name, kind: opts.kind, environment: env.key, secret: res.secret };
  await emit(format, data, () => {
    process.stdout.write(`${res.secret}\n`);
    process.stderr.write(`${paint("yellow", "This secret is shown once: store it now.", process.stderr)} Key ${data.id} (${data.kind}, ${env.key})\n`);
  });
}

export async function keysRevoke(cmd: Command): Promise<void> {
  const { format, identity } = await setup(cmd);
  const res = await identity.revokeApiKey({ id: cmd.args[0] });
  const data = { id: res.apiKey!.id, name: res.apiKey!.name, revokeTime: iso(res.apiKey!.revokeTime) };
  await emit(format, data, () => void process.stderr.write(`Revoked key ${data.name} (${data.id})\n`));
}
