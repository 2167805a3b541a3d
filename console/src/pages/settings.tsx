/**
 * Settings, as far as IdentityService goes: the organization's name, the project's environments,
 * API keys (a new key's secret is shown once, as the API returns it once), members and their
 * roles. What the caller's role cannot change is shown read-only.
 */
import { timestampDate } from "@bufbuild/protobuf/wkt";
import { useMutation, useQuery } from "@connectrpc/connect-query";
import { useQueryClient } from "@tanstack/react-query";
import { useState } from "react";
import { ApiKeyKind, Role } from "#gen/vane/identity/v1/identity_pb.js";
import { IdentityService } from "#gen/vane/identity/v1/identity_service_pb.js";
import { describeError } from "../api.ts";
import { byName, type Route } from "../router.ts";
import { useRole } from "../role.ts";
import { organizationId } from "../session.ts";

type Message = { kind: "error" | "ok"; text: string } | undefined;

function Feedback({ message }: { message: Message }) {
  if (!message) return null;
  return (
    <p role={message.kind === "error" ? "alert" : "status"} className={message.kind}>
      {message.text}
    </p>
  );
}

const lower = (name: string) => name.toLowerCase();
const ROLES = [Role.VIEWER, Role.EDITOR, Role.ADMIN, Role.OWNER];

function Organization() {
  const qc = useQueryClient();
  const { isOwner } = useRole();
  const org = useQuery(IdentityService.method.getOrganization, { id: organizationId() ?? "" });
  const rename = useMutation(IdentityService.method.updateOrganization);
  const [name, setName] = useState<string>();
  const [message, setMessage] = useState<Message>();
  const current = org.data?.organization;
  return (
    <section className="card">
      <h2>Organization</h2>
      {org.error && <p className="error">{describeError(org.error)}</p>}
      {current && !isOwner && (
        <p>
          {current.name} <span className="muted">({current.slug})</span>
        </p>
      )}
      {current && isOwner && (
        <form
          onSubmit={(e) => {
            e.preventDefault();
            rename.mutate(
              { id: current.id, name: name ?? current.name },
              {
                onSuccess: () => {
                  setMessage({ kind: "ok", text: "Renamed." });
                  void qc.invalidateQueries();
                },
                onError: (err) => setMessage({ kind: "error", text: describeError(err) }),
              },
            );
          }}
        >
          <label htmlFor="org-name">Name</label>
          <input id="org-name" value={name ?? current.name} onChange={(e) => setName(e.target.value)} /> <span className="muted">{current.slug}</span>
          <div>
            <button type="submit" disabled={!name || name === current.name}>
              Rename
            </button>
          </div>
        </form>
      )}
      <Feedback message={message} />
    </section>
  );
}

function Environments({ projectId }: { projectId: string }) {
  const qc = useQueryClient();
  const { canAdminister, environmentId: boundTo } = useRole();
  const envs = useQuery(IdentityService.method.listEnvironments, { projectId });
  const createEnv = useMutation(IdentityService.method.createEnvironment);
  const [key, setKey] = useState("");
  const [name, setName] = useState("");
  const [isProtected, setProtected] = useState(false);
  const [message, setMessage] = useState<Message>();
  return (
    <section className="card">
      <h2>Environments</h2>
      {envs.error && <p className="error">{describeError(envs.error)}</p>}
      <ul className="plain-list">
        {byName(envs.data?.environments ?? []).map((e) => (
          <li key={e.id}>
            <strong>{e.name}</strong> <code>{e.key}</code> {e.protected && <span className="pill off">protected</span>}
          </li>
        ))}
      </ul>
      {/* An environment's admin key cannot create environments (they are project-wide). */}
      {canAdminister && !boundTo && (
        <form
          className="inline-form"
          onSubmit={(e) => {
            e.preventDefault();
            createEnv.mutate(
              { projectId, key, name: name || key, protected: isProtected },
              {
                onSuccess: () => {
                  setMessage({ kind: "ok", text: `Created ${key}.` });
                  setKey("");
                  setName("");
                  void qc.invalidateQueries();
                },
                onError: (err) => setMessage({ kind: "error", text: describeError(err) }),
              },
            );
          }}
        >
          <input aria-label="Environment key" value={key} onChange={(e) => setKey(e.target.value)} placeholder="qa" />
          <input aria-label="Environment name" value={name} onChange={(e) => setName(e.target.value)} placeholder="QA" />
          <label className="switch">
            <input type="checkbox" checked={isProtected} onChange={(e) => setProtected(e.target.checked)} /> protected (changes need an admin)
          </label>
          <button type="submit" disabled={!key}>
            Create environment
          </button>
        </form>
      )}
      <Feedback message={message} />
    </section>
  );
}

/** A new key's secret, shown until dismissed: the API returns it this once and keeps only a hash. */
function NewSecret({ secret, onDismiss }: { secret: string; onDismiss: () => void }) {
  const [copied, setCopied] = useState(false);
  return (
    <div className="review" role="dialog" aria-label="New API key">
      <h3>Copy the secret now: it is shown only this once</h3>
      <code data-testid="new-secret" className="secret">
        {secret}
      </code>
      <div>
        <button onClick={() => void navigator.clipboard.writeText(secret).then(() => setCopied(true))}>{copied ? "Copied" : "Copy"}</button>
        <button className="link" onClick={onDismiss}>
          I have stored it
        </button>
      </div>
    </div>
  );
}

function ApiKeys({ projectId, environmentId }: { projectId: string; environmentId: string }) {
  const qc = useQueryClient();
  const { canEdit, canAdminister, isPerson, environmentId: boundTo } = useRole();
  const envs = useQuery(IdentityService.method.listEnvironments, { projectId });
  // "" lists the caller's personal keys: what every person may see; environments' keys need an admin.
  const [chosen, setScope] = useState<string>();
  const scope = chosen ?? (canAdminister ? boundTo || environmentId : "");
  const keys = useQuery(IdentityService.method.listApiKeys, { environmentId: scope }, { enabled: canAdminister || scope === "" });
  const createKey = useMutation(IdentityService.method.createApiKey);
  const revoke = useMutation(IdentityService.method.revokeApiKey);
  const [name, setName] = useState("");
  const [kind, setKind] = useState(ApiKeyKind.SERVER);
  const [secret, setSecret] = useState<string>();
  const [message, setMessage] = useState<Message>();
  // A viewer's view is read-only throughout, their own personal keys included (the API would allow those).
  const mayCreate = scope === "" ? isPerson && canEdit : canAdminister;
  return (
    <section className="card">
      <h2>API keys</h2>
      <label htmlFor="key-scope">Keys of</label>
      <select id="key-scope" value={scope} onChange={(e) => setScope(e.target.value)}>
        {canAdminister &&
          byName(envs.data?.environments ?? [])
            // An environment's admin key manages that environment's keys only.
            .filter((e) => !boundTo || e.id === boundTo)
            .map((e) => (
              <option key={e.id} value={e.id}>
                {e.name} environment
              </option>
            ))}
        {isPerson && <option value="">you (personal keys)</option>}
      </select>
      {keys.error && <p className="error">{describeError(keys.error)}</p>}
      <table className="flags">
        <thead>
          <tr>
            <th>Name</th>
            <th>Kind</th>
            <th>Prefix</th>
            <th>Last used</th>
            <th />
          </tr>
        </thead>
        <tbody>
          {keys.data?.apiKeys.map((k) => (
            <tr key={k.id}>
              <td>{k.name}</td>
              <td>{lower(ApiKeyKind[k.kind])}</td>
              <td>
                <code>{k.prefix}…</code>
              </td>
              <td className="muted">{k.lastUsedTime ? timestampDate(k.lastUsedTime).toLocaleString() : "never"}</td>
              <td>
                {mayCreate && (
                  <button
                    className="link"
                    aria-label={`Revoke ${k.name}`}
                    onClick={() => {
                      if (!confirm(`Revoke ${k.name}? Whatever uses it stops getting new tokens.`)) return;
                      revoke.mutate(
                        { id: k.id },
                        {
                          onSuccess: () => {
                            setMessage({ kind: "ok", text: `Revoked ${k.name}.` });
                            void qc.invalidateQueries();
                          },
                          onError: (err) => setMessage({ kind: "error", text: describeError(err) }),
                        },
                      );
                    }}
                  >
                    Revoke
                  </button>
                )}
              </td>
            </tr>
          ))}
        </tbody>
      </table>
      {keys.data && keys.data.apiKeys.length === 0 && <p className="muted">No keys.</p>}
      {secret && <NewSecret secret={secret} onDismiss={() => setSecret(undefined)} />}
      {mayCreate && !secret && (
        <form
          className="inline-form"
          onSubmit={(e) => {
            e.preventDefault();
            createKey.mutate(
              { environmentId: scope, kind: scope === "" ? ApiKeyKind.PERSONAL : kind, name },
              {
                onSuccess: (res) => {
                  setSecret(res.secret);
                  setMessage(undefined);
                  setName("");
                  void qc.invalidateQueries();
                },
                onError: (err) => setMessage({ kind: "error", text: describeError(err) }),
              },
            );
          }}
        >
          <input aria-label="Key name" value={name} onChange={(e) => setName(e.target.value)} placeholder="checkout backend" />
          {scope !== "" && (
            <select aria-label="Key kind" value={kind} onChange={(e) => setKind(Number(e.target.value) as ApiKeyKind)}>
              <option value={ApiKeyKind.SERVER}>server: evaluate every flag</option>
              <option value={ApiKeyKind.CLIENT}>client: client-visible flags, safe in a browser</option>
              <option value={ApiKeyKind.ADMIN}>admin: manage this environment</option>
            </select>
          )}
          <button type="submit" disabled={!name.trim() || createKey.isPending}>
            Create key
          </button>
        </form>
      )}
      <Feedback message={message} />
    </section>
  );
}

function Members() {
  const qc = useQueryClient();
  const { canAdminister, isOwner } = useRole();
  const orgId = organizationId() ?? "";
  const members = useQuery(IdentityService.method.listMembers, { organizationId: orgId, pageSize: 200 });
  const add = useMutation(IdentityService.method.addMember);
  const setRole = useMutation(IdentityService.method.updateMemberRole);
  const remove = useMutation(IdentityService.method.removeMember);
  const [email, setEmail] = useState("");
  const [role, setNewRole] = useState(Role.VIEWER);
  const [message, setMessage] = useState<Message>();
  const done = (text: string) => ({
    onSuccess: () => {
      setMessage({ kind: "ok", text });
      void qc.invalidateQueries();
    },
    onError: (err: unknown) => setMessage({ kind: "error", text: describeError(err) }),
  });
  // Only owners grant or take away the owner role.
  const grantable = ROLES.filter((r) => isOwner || r !== Role.OWNER);
  return (
    <section className="card">
      <h2>Members</h2>
      {members.error && <p className="error">{describeError(members.error)}</p>}
      <table className="flags">
        <thead>
          <tr>
            <th>Email</th>
            <th>Role</th>
            <th />
          </tr>
        </thead>
        <tbody>
          {members.data?.members.map((m) => {
            const editable = canAdminister && (isOwner || m.role !== Role.OWNER);
            return (
              <tr key={m.id}>
                <td>{m.email}</td>
                <td>
                  {editable ? (
                    <select
                      aria-label={`Role of ${m.email}`}
                      value={m.role}
                      onChange={(e) => setRole.mutate({ memberId: m.id, role: Number(e.target.value) as Role }, done(`${m.email}'s role changed.`))}
                    >
                      {grantable.map((r) => (
                        <option key={r} value={r}>
                          {lower(Role[r])}
                        </option>
                      ))}
                    </select>
                  ) : (
                    lower(Role[m.role])
                  )}
                </td>
                <td>
                  {editable && (
                    <button
                      className="link"
                      aria-label={`Remove ${m.email}`}
                      onClick={() => {
                        if (confirm(`Remove ${m.email} from the organization?`)) remove.mutate({ memberId: m.id }, done(`Removed ${m.email}.`));
                      }}
                    >
                      Remove
                    </button>
                  )}
                </td>
              </tr>
            );
          })}
        </tbody>
      </table>
      {canAdminister && (
        <form
          className="inline-form"
          onSubmit={(e) => {
            e.preventDefault();
            add.mutate({ organizationId: orgId, email, role }, done(`Added ${email}.`));
            setEmail("");
          }}
        >
          <input aria-label="Member email" type="email" value={email} onChange={(e) => setEmail(e.target.value)} placeholder="ann@example.com" />
          <select aria-label="Member role" value={role} onChange={(e) => setNewRole(Number(e.target.value) as Role)}>
            {grantable.map((r) => (
              <option key={r} value={r}>
                {lower(Role[r])}
              </option>
            ))}
          </select>
          <button type="submit" disabled={!email}>
            Add member
          </button>
        </form>
      )}
      <Feedback message={message} />
    </section>
  );
}

export function SettingsPage({ route }: { route: Extract<Route, { page: "settings" }> }) {
  const { isPerson } = useRole();
  return (
    <main>
      <h1>Settings</h1>
      <Organization />
      <Environments projectId={route.projectId} />
      <ApiKeys projectId={route.projectId} environmentId={route.environmentId} />
      {/* Members are organization-wide: an environment's admin key may not list them. */}
      {isPerson && <Members />}
    </main>
  );
}
