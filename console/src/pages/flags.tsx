/** A project's flags, searched and paged on the server, with each environment's state at a glance. */
import { create, fromJson } from "@bufbuild/protobuf";
import { ValueSchema } from "@bufbuild/protobuf/wkt";
import { useMutation, useQuery } from "@connectrpc/connect-query";
import { useState } from "react";
import { FlagService } from "#gen/vane/flags/v1/flag_service_pb.js";
import { FlagType, VariantSchema } from "#gen/vane/flags/v1/flags_pb.js";
import { IdentityService } from "#gen/vane/identity/v1/identity_service_pb.js";
import { describeError } from "../api.ts";
import { byName, href, type Route } from "../router.ts";
import { useRole } from "../role.ts";

const PAGE = 50;

function CreateFlag({ projectId, onCreated }: { projectId: string; onCreated: (key: string) => void }) {
  const [key, setKey] = useState("");
  const [name, setName] = useState("");
  const [type, setType] = useState<"boolean" | "string">("boolean");
  const [error, setError] = useState<string>();
  const createFlag = useMutation(FlagService.method.createFlag);
  const variants =
    type === "boolean"
      ? [create(VariantSchema, { key: "on", value: fromJson(ValueSchema, true) }), create(VariantSchema, { key: "off", value: fromJson(ValueSchema, false) })]
      : [
          create(VariantSchema, { key: "control", value: fromJson(ValueSchema, "control") }),
          create(VariantSchema, { key: "treatment", value: fromJson(ValueSchema, "treatment") }),
        ];
  return (
    <form
      className="card create"
      onSubmit={(e) => {
        e.preventDefault();
        setError(undefined);
        createFlag.mutateAsync({ projectId, key, name: name || key, type: type === "boolean" ? FlagType.BOOLEAN : FlagType.STRING, variants }).then(
          () => onCreated(key),
          (err: unknown) => setError(describeError(err)),
        );
      }}
    >
      <h2>New flag</h2>
      <label htmlFor="new-key">Key</label>
      <input id="new-key" value={key} onChange={(e) => setKey(e.target.value)} placeholder="new-checkout" />
      <label htmlFor="new-name">Name</label>
      <input id="new-name" value={name} onChange={(e) => setName(e.target.value)} placeholder="New checkout" />
      <label htmlFor="new-type">Type</label>
      <select id="new-type" value={type} onChange={(e) => setType(e.target.value as "boolean" | "string")}>
        <option value="boolean">Boolean (on / off)</option>
        <option value="string">String (control / treatment)</option>
      </select>
      <button type="submit" disabled={!key}>
        Create flag
      </button>
      {error && (
        <p role="alert" className="error">
          {error}
        </p>
      )}
    </form>
  );
}

export function FlagsPage({ route }: { route: Extract<Route, { page: "flags" }> }) {
  const [pageToken, setPageToken] = useState("");
  const [creating, setCreating] = useState(false);
  const { canEdit } = useRole();
  const envs = useQuery(IdentityService.method.listEnvironments, { projectId: route.projectId });
  const flags = useQuery(FlagService.method.listFlags, { projectId: route.projectId, query: route.query, pageSize: PAGE, pageToken });
  const environments = byName(envs.data?.environments ?? []);
  return (
    <main>
      <nav className="envbar" aria-label="Environments">
        {environments.map((e) => (
          <a key={e.id} aria-current={e.id === route.environmentId ? "page" : undefined} href={href({ ...route, environmentId: e.id })}>
            {e.name || e.key}
          </a>
        ))}
      </nav>
      <div className="toolbar">
        <h1>Flags</h1>
        <input
          aria-label="Search flags"
          type="search"
          placeholder="Search by key or name"
          defaultValue={route.query}
          onKeyDown={(e) => {
            if (e.key === "Enter") location.hash = href({ ...route, query: (e.target as HTMLInputElement).value });
          }}
        />
        {canEdit && <button onClick={() => setCreating((c) => !c)}>{creating ? "Cancel" : "New flag"}</button>}
      </div>
      {creating && canEdit && (
        <CreateFlag
          projectId={route.projectId}
          onCreated={(key) => (location.hash = href({ page: "flag", projectId: route.projectId, environmentId: route.environmentId, flagKey: key }))}
        />
      )}
      {flags.error && <p className="error">{describeError(flags.error)}</p>}
      <table className="flags">
        <thead>
          <tr>
            <th>Flag</th>
            <th>Type</th>
            {environments.map((e) => (
              <th key={e.id}>{e.name || e.key}</th>
            ))}
          </tr>
        </thead>
        <tbody>
          {flags.data?.flags.map((f) => {
            const states = flags.data.environmentSummaries[f.key]?.environments ?? [];
            return (
              <tr key={f.key}>
                <td>
                  <a href={href({ page: "flag", projectId: route.projectId, environmentId: route.environmentId, flagKey: f.key })}>{f.key}</a>
                  <div className="muted">{f.name}</div>
                </td>
                <td>{FlagType[f.type].toLowerCase()}</td>
                {environments.map((e) => {
                  const s = states.find((x) => x.environmentId === e.id);
                  return (
                    <td key={e.id}>
                      <span className={`pill ${s?.enabled ? "on" : "off"}`}>{s?.enabled ? "on" : "off"}</span>
                      {s && s.ruleCount > 0 && (
                        <span className="muted">
                          {" "}
                          · {s.ruleCount} rule{s.ruleCount > 1 ? "s" : ""}
                        </span>
                      )}
                    </td>
                  );
                })}
              </tr>
            );
          })}
        </tbody>
      </table>
      {flags.data && flags.data.flags.length === 0 && <p className="muted">No flags{route.query ? ` matching "${route.query}"` : ""} yet.</p>}
      <div className="pager">
        {pageToken && <button onClick={() => setPageToken("")}>First page</button>}
        {flags.data?.nextPageToken && <button onClick={() => setPageToken(flags.data.nextPageToken)}>Next page</button>}
        {flags.data && (
          <span className="muted">
            {flags.data.totalSize} flag{flags.data.totalSize === 1 ? "" : "s"}
          </span>
        )}
      </div>
    </main>
  );
}
