/** A project's metrics: what each counts from which tracked event, and a form to define one. */
import { useMutation, useQuery } from "@connectrpc/connect-query";
import { useQueryClient } from "@tanstack/react-query";
import { useState } from "react";
import { ExperimentService } from "#gen/vane/experiments/v1/experiment_service_pb.js";
import { Direction, MetricKind } from "#gen/vane/experiments/v1/experiments_pb.js";
import { describeError } from "../api.ts";
import { useRole } from "../role.ts";
import type { Route } from "../router.ts";

export const KIND_WORDS: Record<number, string> = {
  [MetricKind.CONVERSION]: "Conversion — did the unit do it at least once",
  [MetricKind.COUNT]: "Count — how many times per unit",
  [MetricKind.SUM]: "Sum — the events' values per unit",
  [MetricKind.MEAN]: "Mean — the average event value per unit",
};
const DIRECTION_WORDS: Record<number, string> = { [Direction.INCREASE]: "Higher is better", [Direction.DECREASE]: "Lower is better" };

type Field = "key" | "name" | "eventName";
/** The contract's rules (proto/vane/experiments/v1), checked before sending so each shows beside its field. */
function problems(m: Record<Field, string>): Partial<Record<Field, string>> {
  const out: Partial<Record<Field, string>> = {};
  if (!/^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$/.test(m.key)) out.key = "Letters, digits, _ . - (up to 128), starting with a letter or digit.";
  if (!m.name.trim() || m.name.length > 200) out.name = "A name of 1–200 characters.";
  if (!/^[A-Za-z0-9][A-Za-z0-9_.:-]{0,99}$/.test(m.eventName)) out.eventName = "The event name your code tracks: letters, digits, _ . : - (up to 100).";
  return out;
}
/** The field a server validation message names ("event_name: value does not match…"), if any. */
const fieldOf = (message: string): Field | undefined =>
  /\bevent_name\b/.test(message) ? "eventName" : /\bkey\b/.test(message) ? "key" : /\bname\b/.test(message) ? "name" : undefined;

function CreateMetric({ projectId }: { projectId: string }) {
  const qc = useQueryClient();
  const [m, setM] = useState<Record<Field, string>>({ key: "", name: "", eventName: "" });
  const [kind, setKind] = useState(MetricKind.CONVERSION);
  const [direction, setDirection] = useState(Direction.INCREASE);
  const [errors, setErrors] = useState<Partial<Record<Field, string>>>({});
  const [error, setError] = useState<string>();
  const createMetric = useMutation(ExperimentService.method.createMetric);
  const field = (f: Field, label: string, placeholder: string) => (
    <>
      <label htmlFor={`metric-${f}`}>{label}</label>
      <input
        id={`metric-${f}`}
        value={m[f]}
        aria-invalid={!!errors[f]}
        aria-describedby={errors[f] ? `metric-${f}-error` : undefined}
        placeholder={placeholder}
        onChange={(e) => setM({ ...m, [f]: e.target.value })}
      />
      {errors[f] && (
        <span id={`metric-${f}-error`} className="field-error">
          {errors[f]}
        </span>
      )}
    </>
  );
  return (
    <form
      className="card create"
      noValidate
      onSubmit={(e) => {
        e.preventDefault();
        setError(undefined);
        const found = problems(m);
        setErrors(found);
        if (Object.keys(found).length > 0) return;
        createMetric.mutateAsync({ projectId, ...m, kind, direction }).then(
          () => {
            setM({ key: "", name: "", eventName: "" });
            void qc.invalidateQueries();
          },
          (err: unknown) => {
            const text = describeError(err);
            const f = fieldOf(text);
            if (f) setErrors({ [f]: text });
            else setError(text);
          },
        );
      }}
    >
      <h2>New metric</h2>
      {field("key", "Key", "purchased")}
      {field("name", "Name", "Purchased")}
      {field("eventName", "Event name", "purchase")}
      <label htmlFor="metric-kind">Kind</label>
      <select id="metric-kind" value={kind} onChange={(e) => setKind(Number(e.target.value))}>
        {Object.entries(KIND_WORDS).map(([k, words]) => (
          <option key={k} value={k}>
            {words}
          </option>
        ))}
      </select>
      <label htmlFor="metric-direction">Direction</label>
      <select id="metric-direction" value={direction} onChange={(e) => setDirection(Number(e.target.value))}>
        {Object.entries(DIRECTION_WORDS).map(([k, words]) => (
          <option key={k} value={k}>
            {words}
          </option>
        ))}
      </select>
      <button type="submit">Create metric</button>
      {error && (
        <p role="alert" className="error">
          {error}
        </p>
      )}
    </form>
  );
}

export function MetricsPage({ route }: { route: Extract<Route, { page: "metrics" }> }) {
  const metrics = useQuery(ExperimentService.method.listMetrics, { projectId: route.projectId });
  const { canEdit } = useRole();
  return (
    <main>
      <h1>Metrics</h1>
      <p className="muted">What experiments measure: each metric counts one event your code sends (EventService.Track) per unit.</p>
      {canEdit && <CreateMetric projectId={route.projectId} />}
      {metrics.error && <p className="error">{describeError(metrics.error)}</p>}
      <table className="flags">
        <thead>
          <tr>
            <th>Metric</th>
            <th>Event</th>
            <th>Kind</th>
            <th>Better</th>
          </tr>
        </thead>
        <tbody>
          {metrics.data?.metrics.map((x) => (
            <tr key={x.key}>
              <td>
                {x.key}
                <div className="muted">{x.name}</div>
              </td>
              <td>
                <code>{x.eventName}</code>
              </td>
              <td>{MetricKind[x.kind].toLowerCase()}</td>
              <td>{x.direction === Direction.DECREASE ? "lower" : "higher"}</td>
            </tr>
          ))}
        </tbody>
      </table>
      {metrics.data && metrics.data.metrics.length === 0 && <p className="muted">No metrics yet.</p>}
    </main>
  );
}
