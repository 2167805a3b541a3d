/** A project's flags, searched and paged on the server, with each environment's state at a glance. */
import { create, fromJson } from "@bufbuild/protobuf";
import { ValueSchema } from "@bufbuild/protobuf/wkt";
import { useMutation, useQuery } from "@connectrpc/connect-query";
import { useEffect, useState } from "react";
import { FlagService } from "#gen/vane/flags/v1/flag_service_pb.js";
import { FlagType, VariantSchema } from "#gen/vane/flags/v1/flags_pb.js";
import { IdentityService } from "#gen/vane/identity/v1/identity_service_pb.js";
import { describeError } from "../api.ts";
import { byName, type FlagFilter, href, NO_FILTER, type Route } from "../router.ts";
import { defaultVariants, parseVariants, type VariantRow, type VariantType } from "../variants.ts";
import { useRole } from "../role.ts";

const PAGE = 50;

const TYPES: { type: VariantType; label: string; flagType: FlagType }[] = [
  { type: "boolean", label: "Boolean", flagType: FlagType.BOOLEAN },
  { type: "string", label: "String", flagType: FlagType.STRING },
  { type: "number", label: "Number", flagType: FlagType.NUMBER },
  { type: "object", label: "Object (JSON)", flagType: FlagType.OBJECT },
];

function CreateFlag({ projectId, onCreated }: { projectId: string; onCreated: (key: string) => void }) {
  const [key, setKey] = useState("");
  const [name, setName] = useState("");
  const [type, setType] = useState<VariantType>("boolean");
  const [rows, setRows] = useState<VariantRow[]>(defaultVariants("boolean"));
  const [problems, setProblems] = useState(new Map<string, string>());
  const [error, setError] = useState<string>();
  const createFlag = useMutation(FlagService.method.createFlag);
  const setRow = (i: number, row: VariantRow) => {
    const next = rows.map((r, k) => (k === i ? row : r));
    setRows(next);
    if (problems.size > 0) setProblems(parseVariants(type, next).problems);
  };
  const problem = (id: string) =>
    problems.get(id) && (
      <span className="error field-problem" role="alert">
        {problems.get(id)}
      </span>
    );
  return (
    <form
      className="card create"
      onSubmit={(e) => {
        e.preventDefault();
        setError(undefined);
        const parsed = parseVariants(type, rows);
        setProblems(parsed.problems);
        if (parsed.problems.size > 0) return;
        const variants = parsed.variants.map((v) => create(VariantSchema, { key: v.key, value: fromJson(ValueSchema, v.value) }));
        const flagType = TYPES.find((t) => t.type === type)!.flagType;
        createFlag.mutateAsync({ projectId, key, name: name || key, type: flagType, variants }).then(
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
      <select
        id="new-type"
        value={type}
        onChange={(e) => {
          const t = e.target.value as VariantType;
          setType(t);
          setRows(defaultVariants(t));
          setProblems(new Map());
        }}
      >
        {TYPES.map((t) => (
          <option key={t.type} value={t.type}>
            {t.label}
          </option>
        ))}
      </select>
      <fieldset className="plain variants">
        <legend>Variants</legend>
        {rows.map((r, i) => (
          <div className="variant-row" key={i}>
            <input
              aria-label={`Variant ${i + 1} key`}
              aria-invalid={problems.has(`${i}-key`)}
              value={r.key}
              onChange={(e) => setRow(i, { ...r, key: e.target.value })}
            />
            {type === "boolean" ? (
              <select aria-label={`Variant ${i + 1} value`} value={r.value} onChange={(e) => setRow(i, { ...r, value: e.target.value })}>
                <option>true</option>
                <option>false</option>
              </select>
            ) : type === "object" ? (
              <textarea
                aria-label={`Variant ${i + 1} value`}
                aria-invalid={problems.has(`${i}-value`)}
                rows={2}
                spellCheck={false}
                value={r.value}
                onChange={(e) => setRow(i, { ...r, value: e.target.value })}
              />
            ) : (
              <input
                aria-label={`Variant ${i + 1} value`}
                aria-invalid={problems.has(`${i}-value`)}
                inputMode={type === "number" ? "decimal" : undefined}
                value={r.value}
                onChange={(e) => setRow(i, { ...r, value: e.target.value })}
              />
            )}
            <button type="button" className="link" aria-label={`Remove variant ${i + 1}`} onClick={() => setRows(rows.filter((_, k) => k !== i))}>
              ✕
            </button>
            {problem(`${i}-key`)}
            {problem(`${i}-value`)}
          </div>
        ))}
        {problem("list")}
        <button
          type="button"
          className="link"
          onClick={() => setRows([...rows, { key: "", value: type === "object" ? "{}" : type === "boolean" ? "false" : "" }])}
        >
          + variant
        </button>
      </fieldset>
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

/** The filter bar: every change is a new address, so a filtered list can be bookmarked and shared. */
function Filters({ route }: { route: Extract<Route, { page: "flags" }> }) {
  const filter = route.filter ?? NO_FILTER;
  const go = (change: Partial<FlagFilter>) => (location.hash = href({ ...route, filter: { ...filter, ...change } }));
  return (
    <div className="filters" role="group" aria-label="Filters">
      <select aria-label="Filter by type" value={filter.type} onChange={(e) => go({ type: e.target.value as FlagFilter["type"] })}>
        <option value="">any type</option>
        {TYPES.map((t) => (
          <option key={t.type} value={t.type}>
            {t.label.toLowerCase()}
          </option>
        ))}
      </select>
      <select aria-label="Filter by state in this environment" value={filter.state} onChange={(e) => go({ state: e.target.value as FlagFilter["state"] })}>
        <option value="">on or off here</option>
        <option value="on">on here</option>
        <option value="off">off here</option>
      </select>
      <select aria-label="Filter archived" value={filter.archived} onChange={(e) => go({ archived: e.target.value as FlagFilter["archived"] })}>
        <option value="">not archived</option>
        <option value="include">archived too</option>
        <option value="only">archived only</option>
      </select>
      <input
        aria-label="Filter by tag"
        placeholder="tag"
        defaultValue={filter.tag}
        key={filter.tag}
        onKeyDown={(e) => {
          if (e.key === "Enter") go({ tag: (e.target as HTMLInputElement).value.trim() });
        }}
      />
      {JSON.stringify(filter) !== JSON.stringify(NO_FILTER) && (
        <button className="link" onClick={() => go(NO_FILTER)}>
          Clear filters
        </button>
      )}
    </div>
  );
}

export function FlagsPage({ route }: { route: Extract<Route, { page: "flags" }> }) {
  const [pageToken, setPageToken] = useState("");
  const [creating, setCreating] = useState(false);
  const { canEdit } = useRole();
  const envs = useQuery(IdentityService.method.listEnvironments, { projectId: route.projectId });
  const filter = route.filter ?? NO_FILTER;
  const flags = useQuery(FlagService.method.listFlags, {
    projectId: route.projectId,
    query: route.query,
    pageSize: PAGE,
    pageToken,
    type: TYPES.find((t) => t.type === filter.type)?.flagType ?? FlagType.UNSPECIFIED,
    tags: filter.tag ? [filter.tag] : [],
    enabledInEnvironment: filter.state === "on" ? route.environmentId : "",
    disabledInEnvironment: filter.state === "off" ? route.environmentId : "",
    includeArchived: filter.archived === "include",
    onlyArchived: filter.archived === "only",
  });
  // A new search or filter starts from the first page.
  const address = href(route);
  useEffect(() => setPageToken(""), [address]);
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
      <Filters route={route} />
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
                  {f.archived && <span className="pill off"> archived</span>}
                  <div className="muted">
                    {f.name}
                    {f.tags.map((t) => (
                      <span key={t} className="tag">
                        {t}
                      </span>
                    ))}
                  </div>
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
      {flags.data && flags.data.flags.length === 0 && (
        <p className="muted">
          {route.query || JSON.stringify(filter) !== JSON.stringify(NO_FILTER) ? "No flag matches the search and filters." : "No flags yet."}
        </p>
      )}
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
