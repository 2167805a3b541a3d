/**
 * A project's experiments with their status, and "New experiment" from a flag: its variants as arms
 * whose weights always sum to 100 (console/src/rollout.ts), and the project's metrics chosen as
 * primary, secondary or guardrail.
 */
import { useMutation, useQuery } from "@connectrpc/connect-query";
import { useEffect, useState } from "react";
import { ExperimentService } from "#gen/vane/experiments/v1/experiment_service_pb.js";
import { ExperimentStatus } from "#gen/vane/experiments/v1/experiments_pb.js";
import { FlagService } from "#gen/vane/flags/v1/flag_service_pb.js";
import { describeError } from "../api.ts";
import { useRole } from "../role.ts";
import { href, type Route } from "../router.ts";
import { setShare, total, type Share } from "../rollout.ts";

type Role = "" | "primary" | "secondary" | "guardrail";
export const statusWord = (s: ExperimentStatus): string => ExperimentStatus[s].toLowerCase();

/** Equal shares summing to 100, the remainder on the last arm. */
const evenly = (variants: readonly string[]): Share[] =>
  variants.map((variant, i) => ({ variant, percent: Math.floor(100 / variants.length) + (i === variants.length - 1 ? 100 % variants.length : 0) }));

function NewExperiment({ route, onCreated }: { route: Extract<Route, { page: "experiments" }>; onCreated: (id: string) => void }) {
  const [flagKey, setFlagKey] = useState(route.newForFlag);
  const [key, setKey] = useState("");
  const [name, setName] = useState("");
  const [hypothesis, setHypothesis] = useState("");
  const [shares, setShares] = useState<Share[]>([]);
  const [roles, setRoles] = useState<Record<string, Role>>({});
  const [error, setError] = useState<string>();
  const flags = useQuery(FlagService.method.listFlags, { projectId: route.projectId, pageSize: 200 });
  const flag = useQuery(FlagService.method.getFlag, { projectId: route.projectId, key: flagKey }, { enabled: !!flagKey });
  const metrics = useQuery(ExperimentService.method.listMetrics, { projectId: route.projectId });
  const createExperiment = useMutation(ExperimentService.method.createExperiment);
  const variants = flag.data?.flag?.variants.map((v) => v.key) ?? [];
  // Reset the split when the chosen flag's variants change (keyed by their names, not the array's identity).
  useEffect(() => setShares(evenly(variants)), [variants.join("\n")]);
  const keysOf = (role: Role) => Object.keys(roles).filter((k) => roles[k] === role);
  return (
    <form
      className="card create"
      onSubmit={(e) => {
        e.preventDefault();
        setError(undefined);
        createExperiment
          .mutateAsync({
            projectId: route.projectId,
            environmentId: route.environmentId,
            flagKey,
            key,
            name: name || key,
            hypothesis,
            variants: shares.map((s) => ({ variant: s.variant, weight: s.percent })),
            primaryMetricKeys: keysOf("primary"),
            secondaryMetricKeys: keysOf("secondary"),
            guardrailMetricKeys: keysOf("guardrail"),
          })
          .then(
            (r) => onCreated(r.experiment!.id),
            (err: unknown) => setError(describeError(err)),
          );
      }}
    >
      <h2>New experiment</h2>
      <label htmlFor="exp-flag">Flag</label>
      <select id="exp-flag" value={flagKey} onChange={(e) => setFlagKey(e.target.value)}>
        <option value="">Choose a flag…</option>
        {flags.data?.flags.map((f) => (
          <option key={f.key} value={f.key}>
            {f.key}
          </option>
        ))}
        {flagKey && !flags.data?.flags.some((f) => f.key === flagKey) && <option value={flagKey}>{flagKey}</option>}
      </select>
      <label htmlFor="exp-key">Key</label>
      <input id="exp-key" value={key} onChange={(e) => setKey(e.target.value)} placeholder="one-page-checkout" />
      <label htmlFor="exp-name">Name</label>
      <input id="exp-name" value={name} onChange={(e) => setName(e.target.value)} placeholder="One-page checkout" />
      <label htmlFor="exp-hypothesis">Hypothesis</label>
      <textarea
        id="exp-hypothesis"
        rows={2}
        value={hypothesis}
        onChange={(e) => setHypothesis(e.target.value)}
        placeholder="One page converts better than three"
      />
      {shares.length > 0 && (
        <fieldset className="rollout">
          <legend>Traffic per variant (the first is the control)</legend>
          {shares.map((s) => (
            <label key={s.variant} className="weight">
              Share of {s.variant} (%)
              <input type="number" min={0} max={100} value={s.percent} onChange={(e) => setShares(setShare(shares, s.variant, Number(e.target.value)))} />
            </label>
          ))}
          <span className="muted">Total {total(shares)}%</span>
        </fieldset>
      )}
      <fieldset>
        <legend>Metrics</legend>
        {metrics.data?.metrics.length === 0 && (
          <p className="muted">
            No metrics yet: <a href={href({ page: "metrics", projectId: route.projectId, environmentId: route.environmentId })}>define one</a> first.
          </p>
        )}
        {metrics.data?.metrics.map((m) => (
          <label key={m.key} className="weight">
            {m.name || m.key}
            <select aria-label={`Role of ${m.key}`} value={roles[m.key] ?? ""} onChange={(e) => setRoles({ ...roles, [m.key]: e.target.value as Role })}>
              <option value="">not measured</option>
              <option value="primary">primary (decides)</option>
              <option value="secondary">secondary (to understand)</option>
              <option value="guardrail">guardrail (must not get worse)</option>
            </select>
          </label>
        ))}
      </fieldset>
      <button type="submit" disabled={!flagKey || !key || keysOf("primary").length === 0}>
        Create experiment
      </button>
      {error && (
        <p role="alert" className="error">
          {error}
        </p>
      )}
    </form>
  );
}

export function ExperimentsPage({ route }: { route: Extract<Route, { page: "experiments" }> }) {
  const [creating, setCreating] = useState(!!route.newForFlag);
  const experiments = useQuery(ExperimentService.method.listExperiments, { projectId: route.projectId });
  const { canEdit } = useRole();
  return (
    <main>
      <div className="toolbar">
        <h1>Experiments</h1>
        {canEdit && <button onClick={() => setCreating((c) => !c)}>{creating ? "Cancel" : "New experiment"}</button>}
      </div>
      {creating && canEdit && (
        <NewExperiment
          route={route}
          onCreated={(id) => (location.hash = href({ page: "experiment", projectId: route.projectId, environmentId: route.environmentId, experimentId: id }))}
        />
      )}
      {experiments.error && <p className="error">{describeError(experiments.error)}</p>}
      <table className="flags">
        <thead>
          <tr>
            <th>Experiment</th>
            <th>Flag</th>
            <th>Status</th>
          </tr>
        </thead>
        <tbody>
          {experiments.data?.experiments.map((x) => (
            <tr key={x.id}>
              <td>
                <a href={href({ page: "experiment", projectId: route.projectId, environmentId: x.environmentId, experimentId: x.id })}>{x.name || x.key}</a>
                <div className="muted">{x.key}</div>
              </td>
              <td>{x.flagKey}</td>
              <td>
                <span className={`pill ${x.status === ExperimentStatus.RUNNING ? "on" : "off"}`}>{statusWord(x.status)}</span>
                {x.shippedVariant && <span className="muted"> · shipped {x.shippedVariant}</span>}
              </td>
            </tr>
          ))}
        </tbody>
      </table>
      {experiments.data && experiments.data.experiments.length === 0 && <p className="muted">No experiments yet.</p>}
    </main>
  );
}
