/** experiments list/create/start/stop/results, metrics list/create. */
import type { Command } from "commander";
import { ExperimentService } from "#gen/vane/experiments/v1/experiment_service_pb.js";
import {
  Correction,
  Direction,
  ExperimentStatus,
  LiftScale,
  MetricKind,
  StatisticsEngine,
  TestSides,
  type Experiment,
  type Interval,
} from "#gen/vane/experiments/v1/experiments_pb.js";
import { UsageError, UserError } from "../errors.ts";
import { type MetricSettingOptions, metricSettingsOf, metricSettingsRequest } from "./metric-settings.ts";
import { emit, paint, parseFormat, printTable } from "../output.ts";
import { openSession, type GlobalOptions, type Session } from "../session.ts";
import { enumName, iso } from "../shapes.ts";

type Options = GlobalOptions &
  MetricSettingOptions & {
    reason?: string;
    ship?: string;
    confidence?: string;
    // metrics create
    name?: string;
    event?: string;
    kind?: string;
    direction?: string;
    // experiments create
    env?: string;
    flag?: string;
    variant?: string[];
    control?: string;
    hypothesis?: string;
    metric?: string[];
    secondary?: string[];
    guardrail?: string[];
    engine?: "frequentist" | "bayesian";
    scale?: "relative" | "absolute";
    correction?: "benjamini-hochberg" | "holm" | "none";
    level?: string;
    oneSided?: boolean;
    sequential?: boolean;
    plannedUnits?: string;
  };

/** A number option, or a usage error naming it. */
function numberOption(name: string, text: string | undefined, integer = false): number {
  const n = Number(text ?? 0);
  if (!Number.isFinite(n) || (integer && !Number.isInteger(n))) throw new UsageError(`${name} ${text}: expected ${integer ? "a whole number" : "a number"}`);
  return n;
}

async function setup(cmd: Command) {
  const opts = cmd.optsWithGlobals<Options>();
  const session = await openSession(opts);
  return { opts, format: parseFormat(opts.output), session, api: session.client(ExperimentService), project: await session.project() };
}

async function find(session: Session, projectId: string, keyOrId: string): Promise<Experiment> {
  const { experiments } = await session.client(ExperimentService).listExperiments({ projectId });
  const found = experiments.find((e) => e.key === keyOrId || e.id === keyOrId);
  if (!found) throw new UserError(`no experiment "${keyOrId}" in this project (have: ${experiments.map((e) => e.key).join(", ") || "none"})`);
  return found;
}

const shape = (e: Experiment) => ({
  id: e.id,
  key: e.key,
  name: e.name,
  flag: e.flagKey,
  status: enumName(ExperimentStatus, e.status),
  variants: e.variants.map((v) => ({ variant: v.variant, weight: v.weight })),
  control: e.controlVariant,
  primaryMetrics: e.primaryMetricKeys,
  startTime: iso(e.startTime),
  stopTime: iso(e.stopTime),
  shippedVariant: e.shippedVariant || null,
});

export async function list(cmd: Command): Promise<void> {
  const { format, api, project } = await setup(cmd);
  const data = (await api.listExperiments({ projectId: project.id })).experiments.map(shape);
  await emit(format, data, () =>
    printTable(
      ["key", "flag", "status", "variants", "metrics"],
      data.map((e) => [e.key, e.flag, e.status, e.variants.map((v) => v.variant).join(", "), e.primaryMetrics.join(", ")]),
    ),
  );
}

export async function start(cmd: Command): Promise<void> {
  const { opts, format, session, api, project } = await setup(cmd);
  const e = await find(session, project.id, cmd.args[0]);
  const res = await api.startExperiment({ id: e.id, reason: opts.reason ?? "" });
  await emit(format, shape(res.experiment!), () => void process.stdout.write(`Started experiment ${e.key}\n`));
}

export async function stop(cmd: Command): Promise<void> {
  const { opts, format, session, api, project } = await setup(cmd);
  const e = await find(session, project.id, cmd.args[0]);
  const res = await api.stopExperiment({ id: e.id, shipVariant: opts.ship ?? "", reason: opts.reason ?? "" });
  await emit(format, shape(res.experiment!), () => void process.stdout.write(`Stopped experiment ${e.key}${opts.ship ? `, shipping ${opts.ship}` : ""}\n`));
}

const BAR = 24;

/** An interval drawn on a shared axis [lo, hi], with │ at zero: ───●─── style. */
export function intervalBar(i: Interval | undefined, point: number, lo: number, hi: number): string {
  if (!i || !(hi > lo) || ![i.lower, i.upper, point].every(Number.isFinite)) return "";
  const pos = (x: number) => Math.max(0, Math.min(BAR - 1, Math.round(((x - lo) / (hi - lo)) * (BAR - 1))));
  const cells = Array.from({ length: BAR }, () => " ");
  if (lo <= 0 && hi >= 0) cells[pos(0)] = "│";
  for (let x = pos(i.lower); x <= pos(i.upper); x++) cells[x] = "─";
  cells[pos(point)] = "●";
  const text = cells.join("");
  return i.lower > 0 ? paint("green", text) : i.upper < 0 ? paint("red", text) : text;
}

// Before any data the statistics are NaN: shown as "-", not as numbers.
const pct = (x: number) => (Number.isFinite(x) ? `${x >= 0 ? "+" : ""}${(x * 100).toFixed(1)}%` : "-");
const num = (x: number, f: (x: number) => string) => (Number.isFinite(x) ? f(x) : "-");

export async function results(cmd: Command): Promise<void> {
  const { opts, format, session, api, project } = await setup(cmd);
  // 0 asks for the experiment's own level.
  const asked = opts.confidence === undefined ? 0 : Number(opts.confidence);
  if (opts.confidence !== undefined && !(asked > 0 && asked < 1)) throw new UsageError(`--confidence must be between 0 and 1, got "${opts.confidence}"`);
  const e = await find(session, project.id, cmd.args[0]);
  const r = (await api.getResults({ id: e.id, confidenceLevel: asked })).results!;
  const confidenceLevel = r.confidenceLevel;
  const absolute = r.scale === LiftScale.ABSOLUTE;
  // The lift on the experiment's decision scale: a share of the control, or the metric's units.
  const lift = (x: number) => (absolute ? num(x, (y) => `${y >= 0 ? "+" : ""}${y.toPrecision(3)}`) : pct(x));
  const data = {
    experiment: e.key,
    confidenceLevel: r.confidenceLevel,
    scale: absolute ? "absolute" : "relative",
    computeTime: iso(r.computeTime),
    sampleRatioMismatch: r.sampleRatio?.mismatch ?? false,
    warnings: r.warnings.map((w) => w.message),
    metrics: r.metrics.map((m) => ({
      metric: m.metricKey,
      role: m.role,
      direction: enumName(Direction, m.direction),
      variants: m.variants.map((v) => ({
        variant: v.variant,
        units: Number(v.units),
        mean: v.mean,
        lift: v.lift,
        liftInterval: v.liftInterval ? { lower: v.liftInterval.lower, upper: v.liftInterval.upper } : null,
        pValue: v.decisionPValue,
        significant: v.significant,
        relativeLift: v.relativeLift,
        relativeLiftInterval: v.relativeLiftInterval ? { lower: v.relativeLiftInterval.lower, upper: v.relativeLiftInterval.upper } : null,
        chanceToBeatControl: v.chanceToBeatControl,
      })),
    })),
  };
  await emit(format, data, async () => {
    const rows: (string | number)[][] = [];
    for (const m of r.metrics) {
      const intervals = m.variants.flatMap((v) => (v.liftInterval ? [v.liftInterval.lower, v.liftInterval.upper] : [])).filter(Number.isFinite);
      const lo = Math.min(0, ...intervals);
      const hi = Math.max(0, ...intervals);
      for (const v of m.variants) {
        const control = v.variant === e.controlVariant;
        // A one-sided interval is open on one side (±∞); NaN bounds: too little data for any.
        const iv = v.liftInterval;
        const shown = iv !== undefined && !Number.isNaN(iv.lower) && !Number.isNaN(iv.upper);
        const bound = (x: number) => (Number.isFinite(x) ? lift(x) : x > 0 ? "∞" : "-∞");
        rows.push([
          m.metricKey,
          control ? `${v.variant} (control)` : v.variant,
          Number(v.units),
          num(v.mean, (x) => x.toPrecision(4)),
          control ? "" : lift(v.lift),
          control || !shown ? "" : `[${bound(iv.lower)}, ${bound(iv.upper)}]`,
          control || !shown || !Number.isFinite(iv.lower) || !Number.isFinite(iv.upper) ? "" : intervalBar(iv, v.lift, lo, hi),
          control ? "" : num(v.decisionPValue, (x) => x.toFixed(3)) + (v.significant ? " *" : ""),
        ]);
      }
    }
    await printTable(["metric", "variant", "units", "mean", "lift", `${Math.round(confidenceLevel * 100)}% interval`, "", "p"], rows);
    if (data.sampleRatioMismatch) process.stdout.write(`${paint("red", "sample ratio mismatch: the split is not what was configured")}\n`);
    for (const w of data.warnings) process.stdout.write(`${paint("yellow", "warning:")} ${w}\n`);
  });
}

export async function metrics(cmd: Command): Promise<void> {
  const { format, api, project } = await setup(cmd);
  const data = (await api.listMetrics({ projectId: project.id })).metrics.map((m) => ({
    key: m.key,
    name: m.name,
    event: m.eventName,
    kind: enumName(MetricKind, m.kind),
    direction: enumName(Direction, m.direction),
    ...metricSettingsOf(m),
  }));
  await emit(format, data, () =>
    printTable(
      ["key", "name", "event", "kind", "direction", "settings"],
      data.map((m) => {
        const { key, name, event, kind, direction, ...settings } = m;
        return [
          key,
          name,
          event,
          kind,
          direction,
          Object.entries(settings)
            .map(([k, v]) => `${k}=${v}`)
            .join(" "),
        ];
      }),
    ),
  );
}

/** metrics create KEY --event NAME --kind KIND [--direction increase|decrease] [--name TEXT] [metric type options] */
export async function createMetric(cmd: Command): Promise<void> {
  const { opts, format, api, project } = await setup(cmd);
  const key = cmd.args[0];
  const kind = MetricKind[opts.kind!.toUpperCase() as keyof typeof MetricKind];
  const direction = Direction[(opts.direction ?? "increase").toUpperCase() as keyof typeof Direction];
  const res = await api.createMetric({
    projectId: project.id,
    key,
    name: opts.name || key,
    eventName: opts.event!,
    kind,
    direction,
    ...metricSettingsRequest(opts),
  });
  const m = res.metric!;
  const data = {
    key: m.key,
    name: m.name,
    event: m.eventName,
    kind: enumName(MetricKind, m.kind),
    direction: enumName(Direction, m.direction),
    ...metricSettingsOf(m),
  };
  await emit(format, data, () => void process.stdout.write(`Created metric ${m.key} (${data.kind} of "${m.eventName}", ${data.direction} is better)\n`));
}

/** "treatment=50" → { variant, weight }; a bare "treatment" weighs 1 (even splits need no numbers). */
export function parseArm(text: string): { variant: string; weight: number } {
  const m = /^([^=]+?)(?:=(\d+))?$/.exec(text.trim());
  if (!m) throw new UsageError(`--variant ${text}: expected VARIANT or VARIANT=WEIGHT (a whole number)`);
  return { variant: m[1], weight: m[2] === undefined ? 1 : Number(m[2]) };
}

/** experiments create KEY --flag FLAG --env ENV --variant control=50 --variant treatment=50 --metric KEY … */
export async function create(cmd: Command): Promise<void> {
  const { opts, format, session, api, project } = await setup(cmd);
  const key = cmd.args[0];
  const env = await session.environment(opts.env);
  const variants = (opts.variant ?? []).map(parseArm);
  if (variants.length < 2) throw new UsageError("an experiment needs at least two --variant options (e.g. --variant control --variant treatment)");
  const res = await api.createExperiment({
    projectId: project.id,
    environmentId: env.id,
    flagKey: opts.flag!,
    key,
    name: opts.name || key,
    hypothesis: opts.hypothesis ?? "",
    variants,
    controlVariant: opts.control ?? variants[0].variant,
    primaryMetricKeys: opts.metric ?? [],
    secondaryMetricKeys: opts.secondary ?? [],
    guardrailMetricKeys: opts.guardrail ?? [],
    // Out-of-range levels and sizes are refused by the server, naming the field and its limits.
    settings: {
      engine: opts.engine === "bayesian" ? StatisticsEngine.BAYESIAN : StatisticsEngine.FREQUENTIST,
      scale: opts.scale === "absolute" ? LiftScale.ABSOLUTE : LiftScale.RELATIVE,
      correction: { "benjamini-hochberg": Correction.BENJAMINI_HOCHBERG, holm: Correction.HOLM, none: Correction.NONE }[
        opts.correction ?? "benjamini-hochberg"
      ],
      confidenceLevel: numberOption("--level", opts.level),
      sides: opts.oneSided ? TestSides.ONE_SIDED : TestSides.TWO_SIDED,
      sequential: opts.sequential ?? false,
      plannedUnitsPerArm: BigInt(numberOption("--planned-units", opts.plannedUnits, true)),
    },
  });
  const e = res.experiment!;
  const s = e.settings;
  await emit(
    format,
    {
      ...shape(e),
      settings: s && {
        engine: enumName(StatisticsEngine, s.engine),
        scale: enumName(LiftScale, s.scale),
        correction: enumName(Correction, s.correction),
        confidenceLevel: s.confidenceLevel || 0.95,
        sides: enumName(TestSides, s.sides),
        sequential: s.sequential,
        plannedUnitsPerArm: Number(s.plannedUnitsPerArm),
      },
    },
    () => void process.stdout.write(`Created experiment ${e.key} on ${e.flagKey} in ${env.key} (draft: vane experiments start ${e.key})\n`),
  );
}
