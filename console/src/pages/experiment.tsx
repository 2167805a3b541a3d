/**
 * One experiment: its design, start / stop / stop-and-ship behind a confirmation, and its results
 * for a product manager — warnings first, then per metric each arm's lift with its interval
 * (forest plot), p-value, chance to win, the verdict in words, the "safe to look" figures, and the
 * timeline. The charts load lazily (./charts.tsx).
 */
import { timestampDate } from "@bufbuild/protobuf/wkt";
import { useMutation, useQuery } from "@connectrpc/connect-query";
import { useQueryClient } from "@tanstack/react-query";
import { lazy, Suspense, useState } from "react";
import { ExperimentService } from "#gen/vane/experiments/v1/experiment_service_pb.js";
import { ExperimentStatus, LiftScale, StatisticsEngine, TestSides, type MetricResult, type Results } from "#gen/vane/experiments/v1/experiments_pb.js";
import { describeError } from "../api.ts";
import { useRole } from "../role.ts";
import { href, type Route } from "../router.ts";
import { bounded, interval, lift, mean, percent, pValue, verdict } from "../results.ts";
import { statusWord } from "./experiments.tsx";

const ForestPlot = lazy(() => import("./charts.tsx").then((m) => ({ default: m.ForestPlot })));
const Timeline = lazy(() => import("./charts.tsx").then((m) => ({ default: m.Timeline })));

function MetricTable({ metric, results }: { metric: MetricResult; results: Results }) {
  const [control] = metric.variants;
  const level = Math.round(results.confidenceLevel * 100);
  const absolute = results.scale === LiftScale.ABSOLUTE;
  const bayesian = results.engine === StatisticsEngine.BAYESIAN;
  const unbounded = metric.variants.slice(1).some((v) => !bounded(v.relativeLiftInterval) || !bounded(v.relativeSequentialInterval));
  return (
    <section className="card" data-testid={`metric-${metric.metricKey}`}>
      <h3>
        {metric.metricKey} <span className="muted">({metric.role})</span>
      </h3>
      <Suspense fallback={<p className="muted">Loading chart…</p>}>
        <ForestPlot metric={metric} />
      </Suspense>
      <table className="flags results">
        <thead>
          <tr>
            <th>Variant</th>
            <th>Units</th>
            <th>Mean</th>
            <th>Lift{absolute ? " (units)" : ""}</th>
            <th>
              {level}% {bayesian ? "credible interval" : results.sequential ? "interval, safe to look" : "interval"}
            </th>
            <th>{bayesian ? "Risk if shipped" : "p-value (corrected)"}</th>
            <th>Chance to win</th>
            <th>Safe to look: interval, p</th>
            <th>Verdict</th>
          </tr>
        </thead>
        <tbody>
          <tr>
            <td>{control?.variant}</td>
            <td>{String(control?.units ?? 0)}</td>
            <td>{control ? mean(control.mean) : "—"}</td>
            <td colSpan={6} className="muted">
              control: the baseline the others are compared with
            </td>
          </tr>
          {metric.variants.slice(1).map((v) => {
            const said = verdict(v, metric.direction);
            return (
              <tr key={v.variant}>
                <td>{v.variant}</td>
                <td>{String(v.units)}</td>
                <td>{mean(v.mean)}</td>
                <td>{lift(v.lift, absolute)}</td>
                <td>{interval(v.liftInterval, absolute)}</td>
                <td>{bayesian ? percent(v.risk, false) : pValue(v.decisionPValue)}</td>
                <td>{percent(v.chanceToBeatControl, false)}</td>
                <td>
                  {interval(v.relativeSequentialInterval)}, {pValue(v.sequentialPValue)}
                </td>
                <td className={`verdict ${said.kind}`}>
                  {said.words}
                  {v.guardrailViolated && <strong> — guardrail violated</strong>}
                </td>
              </tr>
            );
          })}
        </tbody>
      </table>
      <p className="muted">
        Chart: the bar is the {level}% interval of the lift, the thin grey line the "safe to look" interval, the dot the estimate.
        {unbounded && " — means no bounded interval yet: the control's numbers are still too close to 0 or too few to bound the lift; keep collecting data."}
      </p>
    </section>
  );
}

function ResultsView({ results, primary }: { results: Results; primary: string }) {
  const timeline = useQuery(ExperimentService.method.getResultsTimeline, { id: results.experimentId });
  return (
    <>
      {results.warnings.length > 0 && (
        <section className="card warnings" aria-label="Warnings">
          <h2>Read this first</h2>
          <div role="alert">
            <ul>
              {results.warnings.map((w, i) => (
                <li key={i}>
                  <strong>{w.code.replaceAll("_", " ")}</strong>: {w.message}
                </li>
              ))}
            </ul>
          </div>
        </section>
      )}
      <p className="muted">
        {results.engine === StatisticsEngine.BAYESIAN
          ? `Bayesian, ${Math.round(results.confidenceLevel * 100)}% credible intervals; a variant is called when its chance to win and its risk pass the experiment's thresholds.`
          : `${Math.round(results.confidenceLevel * 100)}% confidence, ${results.sides === TestSides.ONE_SIDED ? "one-sided (only an improvement can be called)" : "two-sided"}; p-values corrected across metrics (${results.correction || "none"})${results.sequential ? "; decisions follow the safe-to-look figures" : ""}.`}{" "}
        Lifts are {results.scale === LiftScale.ABSOLUTE ? "differences in the metric's units" : "relative to the control"}. "Safe to look" figures stay valid
        however often you check while it runs; the others are for the final read. Computed{" "}
        {results.computeTime ? timestampDate(results.computeTime).toLocaleString() : ""}.
      </p>
      {results.progress && (
        <p>
          <label>
            Progress towards the planned {String(results.progress.plannedUnitsPerArm)} units per arm:{" "}
            <progress max={1} value={Math.min(1, results.progress.fraction)} /> {percent(results.progress.fraction, false)}
          </label>
        </p>
      )}
      {results.metrics.map((m) => (
        <MetricTable key={m.metricKey} metric={m} results={results} />
      ))}
      <section className="card">
        <h2>Over time</h2>
        {timeline.error && <p className="error">{describeError(timeline.error)}</p>}
        {timeline.data && (
          <Suspense fallback={<p className="muted">Loading chart…</p>}>
            <Timeline points={timeline.data.points} metricKey={primary} />
          </Suspense>
        )}
      </section>
    </>
  );
}

export function ExperimentPage({ route }: { route: Extract<Route, { page: "experiment" }> }) {
  const qc = useQueryClient();
  const got = useQuery(ExperimentService.method.getExperiment, { id: route.experimentId });
  const x = got.data?.experiment;
  const live = x?.status === ExperimentStatus.RUNNING || x?.status === ExperimentStatus.STOPPED;
  const results = useQuery(ExperimentService.method.getResults, { id: route.experimentId }, { enabled: live, refetchInterval: 10_000 });
  const start = useMutation(ExperimentService.method.startExperiment);
  const stop = useMutation(ExperimentService.method.stopExperiment);
  const { canEdit } = useRole();
  const [ship, setShip] = useState("");
  const [message, setMessage] = useState<{ kind: "error" | "ok"; text: string }>();
  if (got.error) return <main className="error">{describeError(got.error)}</main>;
  if (!x) return <main>Loading…</main>;
  const done = (text: string) => () => {
    setMessage({ kind: "ok", text });
    void qc.invalidateQueries();
  };
  const failed = (err: unknown) => setMessage({ kind: "error", text: describeError(err) });
  return (
    <main>
      <p>
        <a href={href({ page: "experiments", projectId: route.projectId, environmentId: route.environmentId, newForFlag: "" })}>← Experiments</a>
      </p>
      <h1>
        {x.name || x.key} <span className={`pill ${x.status === ExperimentStatus.RUNNING ? "on" : "off"}`}>{statusWord(x.status)}</span>
      </h1>
      <p>{x.hypothesis}</p>
      <p className="muted">
        Flag <a href={href({ page: "flag", projectId: route.projectId, environmentId: x.environmentId, flagKey: x.flagKey })}>{x.flagKey}</a> ·{" "}
        {x.variants.map((v) => `${v.variant} ${v.weight}`).join(" / ")} · primary {x.primaryMetricKeys.join(", ")}
        {x.guardrailMetricKeys.length > 0 && ` · guardrails ${x.guardrailMetricKeys.join(", ")}`}
        {x.startTime && ` · started ${timestampDate(x.startTime).toLocaleString()}`}
        {x.shippedVariant && ` · shipped ${x.shippedVariant}`}
      </p>
      <section className="card actions">
        {canEdit && (x.status === ExperimentStatus.DRAFT || x.status === ExperimentStatus.STARTING) && (
          <button
            onClick={() => {
              if (confirm(`Start ${x.key}? The flag ${x.flagKey} serves the experiment's split in this environment from now on.`))
                start.mutate({ id: x.id, reason: "started from the console" }, { onSuccess: done("Started."), onError: failed });
            }}
          >
            Start
          </button>
        )}
        {canEdit && (x.status === ExperimentStatus.RUNNING || x.status === ExperimentStatus.STOPPING) && (
          <>
            <button
              onClick={() => {
                if (confirm(`Stop ${x.key}? The flag goes back to its targeting before the experiment.`))
                  stop.mutate({ id: x.id, reason: "stopped from the console" }, { onSuccess: done("Stopped."), onError: failed });
              }}
            >
              Stop
            </button>
            <label htmlFor="ship">Or stop and serve one variant to everyone</label>
            <select id="ship" value={ship} onChange={(e) => setShip(e.target.value)}>
              <option value="">Choose a variant…</option>
              {x.variants.map((v) => (
                <option key={v.variant} value={v.variant}>
                  {v.variant}
                </option>
              ))}
            </select>{" "}
            <button
              disabled={!ship}
              onClick={() => {
                if (confirm(`Stop ${x.key} and serve ${ship} to everyone?`))
                  stop.mutate(
                    { id: x.id, shipVariant: ship, reason: `shipped ${ship} from the console` },
                    { onSuccess: done(`Stopped; ${ship} ships to everyone.`), onError: failed },
                  );
              }}
            >
              Stop and ship
            </button>
          </>
        )}
        {x.status === ExperimentStatus.STOPPED && (
          <p className="muted">Stopped{x.stopTime ? ` ${timestampDate(x.stopTime).toLocaleString()}` : ""}; the results below are frozen.</p>
        )}
        {message && (
          <p role={message.kind === "error" ? "alert" : "status"} className={message.kind}>
            {message.text}
          </p>
        )}
      </section>
      {results.error && <p className="error">{describeError(results.error)}</p>}
      {results.data?.results && <ResultsView results={results.data.results} primary={x.primaryMetricKeys[0] ?? ""} />}
    </main>
  );
}
