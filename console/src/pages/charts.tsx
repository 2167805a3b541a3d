/**
 * The results' charts, loaded only when an experiment page shows them (a separate chunk, so the
 * first page's script stays small): a forest plot of each arm's relative lift with its interval,
 * and the results timeline drawn by uPlot.
 */
import { timestampDate } from "@bufbuild/protobuf/wkt";
import { useEffect, useRef } from "react";
import uPlot from "uplot";
import type { MetricResult, TimelinePoint } from "#gen/vane/experiments/v1/experiments_pb.js";
import { bounded, percent } from "../results.ts";

const W = 560;
const ROW = 34;

/**
 * One row per arm against control: the confidence interval as a thick bar, the "safe to look"
 * (always-valid) interval as a thin line, the estimate as a dot, 0 as a vertical line. An arm
 * without bounds shows "—" and no bar.
 */
export function ForestPlot({ metric }: { metric: MetricResult }) {
  const arms = metric.variants.slice(1);
  // The axis fits the estimates and their confidence intervals; the wider "safe to look" interval is cut at its edges.
  const xs = arms.flatMap((v) => [v.relativeLift, ...(bounded(v.relativeLiftInterval) ? [v.relativeLiftInterval.lower, v.relativeLiftInterval.upper] : [])]);
  const span = Math.max(0.05, ...xs.filter(Number.isFinite).map(Math.abs)) * 1.1;
  const left = 110;
  const clamp = (v: number) => Math.max(-span, Math.min(span, v));
  const x = (v: number) => left + ((clamp(v) + span) / (2 * span)) * (W - left - 50);
  const height = arms.length * ROW + 30;
  return (
    <svg className="forest" viewBox={`0 0 ${W} ${height}`} width={W} height={height} role="img" aria-label={`Relative lift of ${metric.metricKey} per variant`}>
      <line x1={x(0)} x2={x(0)} y1={4} y2={height - 22} className="zero" />
      {[-span, 0, span].map((t) => (
        <text key={t} x={x(t)} y={height - 6} textAnchor="middle" className="tick">
          {percent(t)}
        </text>
      ))}
      {arms.map((v, i) => {
        const y = 18 + i * ROW;
        const ci = v.relativeLiftInterval;
        const seq = v.relativeSequentialInterval;
        return (
          <g key={v.variant}>
            <text x={0} y={y + 4} className="label">
              {v.variant}
            </text>
            {bounded(seq) && <line x1={x(seq.lower)} x2={x(seq.upper)} y1={y} y2={y} className="sequential" />}
            {bounded(ci) ? (
              <line x1={x(ci.lower)} x2={x(ci.upper)} y1={y} y2={y} className="interval" />
            ) : (
              <text x={x(0) + 8} y={y + 4} className="label">
                — no bounded interval yet
              </text>
            )}
            {Number.isFinite(v.relativeLift) && <circle cx={x(v.relativeLift)} cy={y} r={5} className="estimate" />}
          </g>
        );
      })}
    </svg>
  );
}

/** The primary metric's relative lift of each arm at the end of each day; days without a bounded value are gaps. */
export function Timeline({ points, metricKey }: { points: TimelinePoint[]; metricKey: string }) {
  const el = useRef<HTMLDivElement>(null);
  const arms =
    points
      .at(-1)
      ?.results?.metrics.find((m) => m.metricKey === metricKey)
      ?.variants.slice(1)
      .map((v) => v.variant) ?? [];
  useEffect(() => {
    if (!el.current || points.length === 0) return;
    const at = (p: TimelinePoint, arm: string) => {
      const v = p.results?.metrics.find((m) => m.metricKey === metricKey)?.variants.find((x) => x.variant === arm)?.relativeLift;
      return v !== undefined && Number.isFinite(v) ? v * 100 : null;
    };
    const data: uPlot.AlignedData = [points.map((p) => (p.time ? timestampDate(p.time).getTime() / 1000 : 0)), ...arms.map((a) => points.map((p) => at(p, a)))];
    const colors = ["#3b5bdb", "#e8590c", "#2f9e44", "#ae3ec9"];
    const plot = new uPlot(
      {
        width: W,
        height: 220,
        series: [{}, ...arms.map((a, i) => ({ label: `${a} lift (%)`, stroke: colors[i % colors.length], width: 2, points: { show: true, size: 7 } }))],
        // One day alone would otherwise stretch the time axis over years.
        scales: { x: { time: true, range: () => [Math.min(...data[0]) - 43_200, Math.max(...data[0]) + 43_200] } },
        axes: [{}, { values: (_u, ticks) => ticks.map((t) => `${t}%`) }],
      },
      data,
      el.current,
    );
    return () => plot.destroy();
  }, [points, metricKey, arms.join("\n")]);
  if (points.length === 0) return <p className="muted">No day has ended with data yet.</p>;
  return <div ref={el} role="img" aria-label={`Timeline of ${metricKey}`} data-testid="timeline" />;
}
