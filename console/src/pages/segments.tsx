/**
 * The project's segments (reusable audiences): list, create, edit, delete an unused one, and where
 * each is used. "Used by" comes from ListSegments' `used_by` (the server computes it from every
 * environment's rules), so it is the same answer DeleteSegment enforces.
 */
import { create, fromJson, toJson, type JsonValue } from "@bufbuild/protobuf";
import { ValueSchema } from "@bufbuild/protobuf/wkt";
import { useMutation, useQuery } from "@connectrpc/connect-query";
import { useQueryClient } from "@tanstack/react-query";
import { useState } from "react";
import { type Condition, ConditionSchema, Operator, type Segment } from "#gen/vane/flags/v1/flags_pb.js";
import { type SegmentReference, SegmentService } from "#gen/vane/flags/v1/segment_service_pb.js";
import { IdentityService } from "#gen/vane/identity/v1/identity_service_pb.js";
import { describeError } from "../api.ts";
import { href, type Route } from "../router.ts";
import { useRole } from "../role.ts";

/** "OPERATOR_STARTS_WITH" → "starts with". */
const operatorName = (op: Operator) =>
  Operator[op]
    .replace(/^OPERATOR_/, "")
    .replaceAll("_", " ")
    .toLowerCase();
const OPERATORS = Object.values(Operator).filter((v): v is Operator => typeof v === "number" && v !== Operator.UNSPECIFIED);
const NUMERIC = new Set([Operator.LESS_THAN, Operator.LESS_THAN_OR_EQUAL, Operator.GREATER_THAN, Operator.GREATER_THAN_OR_EQUAL]);
/** The operators taking a list; every other one takes a single value (so a comma in a pattern stays). */
const LIST = new Set([Operator.IN, Operator.NOT_IN]);

/** One attribute condition as the form edits it: the values as text, comma-separated for lists. */
interface Row {
  attribute: string;
  operator: Operator;
  values: string;
  /** The condition the row was loaded from: saved as it was (values' JSON types included) unless edited. */
  loaded?: Condition;
}

/** The row for an attribute condition the form can edit (not a pattern with flags, whose two values a text box would merge). */
function rowOf(c: Condition): Row | undefined {
  if (c.kind.case !== "attribute") return undefined;
  const { attribute, operator, values } = c.kind.value;
  if (operator === Operator.MATCHES && values.length > 1) return undefined;
  return { attribute, operator, values: values.map((v) => String(toJson(ValueSchema, v))).join(", "), loaded: c };
}

const unchanged = (r: Row) => {
  const was = r.loaded && rowOf(r.loaded);
  return was !== undefined && was.attribute === r.attribute && was.operator === r.operator && was.values === r.values;
};

/** Numeric comparisons take numbers; every other operator compares strings. Throws on a number that is not one. */
function conditionOf(r: Row): Condition {
  if (r.loaded && unchanged(r)) return r.loaded;
  const texts = (LIST.has(r.operator) ? r.values.split(",") : [r.values]).map((v) => v.trim()).filter(Boolean);
  const values = texts.map((t): JsonValue => {
    if (!NUMERIC.has(r.operator)) return t;
    if (!Number.isFinite(Number(t))) throw new Error(`${r.attribute} ${operatorName(r.operator)}: "${t}" is not a number`);
    return Number(t);
  });
  return create(ConditionSchema, {
    kind: { case: "attribute", value: { attribute: r.attribute.trim(), operator: r.operator, values: values.map((v) => fromJson(ValueSchema, v)) } },
  });
}

const describeCondition = (c: Condition): string => {
  if (c.kind.case !== "attribute") return c.kind.case === "jsonLogic" ? "a JSON Logic expression" : (c.kind.case ?? "condition");
  const { attribute, operator, values } = c.kind.value;
  return `${attribute} ${operatorName(operator)} ${values.map((v) => String(toJson(ValueSchema, v))).join(", ")}`;
};

const lines = (s: string) =>
  s
    .split("\n")
    .map((l) => l.trim())
    .filter(Boolean);

function SegmentForm({ projectId, segment, onDone }: { projectId: string; segment?: Segment; onDone: (key: string) => void }) {
  const qc = useQueryClient();
  const createSegment = useMutation(SegmentService.method.createSegment);
  const updateSegment = useMutation(SegmentService.method.updateSegment);
  const [key, setKey] = useState(segment?.key ?? "");
  const [name, setName] = useState(segment?.name ?? "");
  const [description, setDescription] = useState(segment?.description ?? "");
  const [rows, setRows] = useState<Row[]>(() => (segment?.conditions ?? []).flatMap((c) => rowOf(c) ?? []));
  // Conditions the form does not edit (JSON Logic from a flagd import, a pattern with flags) are kept as they are.
  const kept = (segment?.conditions ?? []).filter((c) => !rowOf(c));
  const [included, setIncluded] = useState((segment?.includedKeys ?? []).join("\n"));
  const [excluded, setExcluded] = useState((segment?.excludedKeys ?? []).join("\n"));
  const [error, setError] = useState<string>();
  const setRow = (i: number, r: Partial<Row>) => setRows(rows.map((x, j) => (j === i ? { ...x, ...r } : x)));

  const save = () => {
    setError(undefined);
    let conditions: Condition[];
    try {
      conditions = [...rows.filter((r) => r.attribute.trim()).map(conditionOf), ...kept];
    } catch (err) {
      return setError((err as Error).message);
    }
    const fields = {
      projectId,
      key,
      name: name || key,
      description,
      conditions,
      includedKeys: lines(included),
      excludedKeys: lines(excluded),
      reason: "console",
    };
    const done = segment ? updateSegment.mutateAsync({ ...fields, expectedVersion: segment.version }) : createSegment.mutateAsync(fields);
    done.then(
      () => {
        void qc.invalidateQueries();
        onDone(key);
      },
      (err: unknown) => setError(describeError(err)),
    );
  };

  return (
    <form
      className="card create"
      aria-label={segment ? `Edit ${segment.key}` : "New segment"}
      onSubmit={(e) => {
        e.preventDefault();
        save();
      }}
    >
      <h2>{segment ? `Edit ${segment.key}` : "New segment"}</h2>
      {!segment && (
        <>
          <label htmlFor="seg-key">Key</label>
          <input id="seg-key" value={key} onChange={(e) => setKey(e.target.value)} placeholder="beta-testers" />
        </>
      )}
      <label htmlFor="seg-name">Name</label>
      <input id="seg-name" value={name} onChange={(e) => setName(e.target.value)} placeholder="Beta testers" />
      <label htmlFor="seg-description">Description</label>
      <input id="seg-description" value={description} onChange={(e) => setDescription(e.target.value)} />
      <h3>Members match every condition</h3>
      {rows.map((r, i) => (
        <div className="condition" key={i}>
          <input aria-label={`Attribute ${i + 1}`} value={r.attribute} onChange={(e) => setRow(i, { attribute: e.target.value })} placeholder="email" />
          <select aria-label={`Operator ${i + 1}`} value={r.operator} onChange={(e) => setRow(i, { operator: Number(e.target.value) as Operator })}>
            {OPERATORS.map((op) => (
              <option key={op} value={op}>
                {operatorName(op)}
              </option>
            ))}
          </select>
          <input
            aria-label={`Values ${i + 1}`}
            value={r.values}
            onChange={(e) => setRow(i, { values: e.target.value })}
            placeholder={LIST.has(r.operator) ? "a, b, c" : "value"}
          />
          <button type="button" className="link" onClick={() => setRows(rows.filter((_, j) => j !== i))}>
            Remove
          </button>
        </div>
      ))}
      {kept.length > 0 && <p className="muted">{kept.length} other condition(s) (JSON Logic, a pattern with flags) are kept as they are.</p>}
      <button type="button" onClick={() => setRows([...rows, { attribute: "", operator: Operator.EQUALS, values: "" }])}>
        Add a condition
      </button>
      <div className="keys">
        <div>
          <label htmlFor="seg-included">Always members (targeting keys, one a line)</label>
          <textarea id="seg-included" rows={4} value={included} onChange={(e) => setIncluded(e.target.value)} />
        </div>
        <div>
          <label htmlFor="seg-excluded">Never members (wins over everything)</label>
          <textarea id="seg-excluded" rows={4} value={excluded} onChange={(e) => setExcluded(e.target.value)} />
        </div>
      </div>
      <button type="submit" disabled={!key || createSegment.isPending || updateSegment.isPending}>
        {segment ? "Save segment" : "Create segment"}
      </button>
      {error && (
        <p role="alert" className="error">
          {error}
        </p>
      )}
    </form>
  );
}

function UsedBy({ refs, route, envNames }: { refs: SegmentReference[]; route: Extract<Route, { page: "segments" }>; envNames: Map<string, string> }) {
  if (refs.length === 0) return <span className="muted">unused</span>;
  return (
    <ul className="used-by">
      {refs.map((r) => (
        <li key={r.flagKey}>
          <a href={href({ page: "flag", projectId: route.projectId, environmentId: route.environmentId, flagKey: r.flagKey })}>{r.flagKey}</a>
          <span className="muted">
            {" "}
            in {r.environmentIds.map((id) => envNames.get(id) ?? id).join(", ")}
            {r.flagArchived && " (archived)"}
          </span>
        </li>
      ))}
    </ul>
  );
}

export function SegmentsPage({ route }: { route: Extract<Route, { page: "segments" }> }) {
  const qc = useQueryClient();
  const { canEdit } = useRole();
  const segments = useQuery(SegmentService.method.listSegments, { projectId: route.projectId });
  const envs = useQuery(IdentityService.method.listEnvironments, { projectId: route.projectId });
  const envNames = new Map((envs.data?.environments ?? []).map((e) => [e.id, e.name || e.key]));
  const remove = useMutation(SegmentService.method.deleteSegment);
  const [editing, setEditing] = useState<string>(); // a segment's key, or "" for a new one
  const [message, setMessage] = useState<{ kind: "error" | "ok"; text: string }>();
  const editedSegment = segments.data?.segments.find((s) => s.key === editing);

  return (
    <main>
      <div className="toolbar">
        <h1>Segments</h1>
        {canEdit && (
          <button
            onClick={() => {
              setMessage(undefined);
              setEditing(editing === "" ? undefined : "");
            }}
          >
            {editing === "" ? "Cancel" : "New segment"}
          </button>
        )}
      </div>
      {canEdit && editing !== undefined && (editing === "" || editedSegment) && (
        <SegmentForm
          key={editing}
          projectId={route.projectId}
          segment={editedSegment}
          onDone={(key) => {
            setEditing(undefined);
            setMessage({ kind: "ok", text: `Saved ${key}.` });
          }}
        />
      )}
      {message && (
        <p role={message.kind === "error" ? "alert" : "status"} className={message.kind}>
          {message.text}
        </p>
      )}
      {segments.error && <p className="error">{describeError(segments.error)}</p>}
      <table className="flags">
        <thead>
          <tr>
            <th>Segment</th>
            <th>Audience</th>
            <th>Used by</th>
            {canEdit && <th />}
          </tr>
        </thead>
        <tbody>
          {segments.data?.segments.map((s) => {
            const refs = segments.data.usedBy[s.key]?.references ?? [];
            return (
              <tr key={s.key}>
                <td>
                  <strong>{s.key}</strong>
                  <div className="muted">{s.name}</div>
                  {s.description && <div className="muted">{s.description}</div>}
                </td>
                <td>
                  {s.conditions.map((c, i) => (
                    <div key={i}>{describeCondition(c)}</div>
                  ))}
                  {s.includedKeys.length > 0 && <div className="muted">always: {s.includedKeys.join(", ")}</div>}
                  {s.excludedKeys.length > 0 && <div className="muted">never: {s.excludedKeys.join(", ")}</div>}
                </td>
                <td>
                  <UsedBy refs={refs} route={route} envNames={envNames} />
                </td>
                {canEdit && (
                  <td>
                    <button
                      className="link"
                      aria-label={`Edit ${s.key}`}
                      onClick={() => {
                        setMessage(undefined);
                        setEditing(s.key);
                      }}
                    >
                      Edit
                    </button>
                    {refs.length === 0 && (
                      <button
                        className="link"
                        aria-label={`Delete ${s.key}`}
                        onClick={() => {
                          if (!confirm(`Delete segment ${s.key}?`)) return;
                          remove.mutate(
                            { projectId: route.projectId, key: s.key, expectedVersion: s.version, reason: "console" },
                            {
                              onSuccess: () => {
                                setMessage({ kind: "ok", text: `Deleted ${s.key}.` });
                                void qc.invalidateQueries();
                              },
                              onError: (err) => setMessage({ kind: "error", text: describeError(err) }),
                            },
                          );
                        }}
                      >
                        Delete
                      </button>
                    )}
                  </td>
                )}
              </tr>
            );
          })}
        </tbody>
      </table>
      {segments.data && segments.data.segments.length === 0 && <p className="muted">No segments yet.</p>}
    </main>
  );
}
