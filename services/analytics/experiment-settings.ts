/**
 * An experiment's analysis settings: stored as proto JSON on the experiment, checked against its
 * metrics, and turned into the stats library's options. Zero values mean the defaults, which are
 * how results were computed before settings existed.
 */
import { create, fromJson, type JsonValue, toJson } from "@bufbuild/protobuf";
import {
  Correction,
  type ExperimentSettings,
  ExperimentSettingsSchema,
  LiftScale,
  StatisticsEngine,
  TestSides,
} from "#gen/vane/experiments/v1/experiments_pb.js";
import { invalidArgument } from "#lib/process/errors.ts";
import type { AnalysisOptions } from "./stats/index.ts";

/** The settings as stored (proto JSON; {} = every default). */
export function storeSettings(s: ExperimentSettings | undefined): string {
  return JSON.stringify(s ? toJson(ExperimentSettingsSchema, s) : {});
}

/** The settings of a stored row. */
export function loadSettings(stored: unknown): ExperimentSettings {
  return fromJson(ExperimentSettingsSchema, (stored ?? {}) as JsonValue, { ignoreUnknownFields: true });
}

/** Checks what the contract's rules cannot: priors name the experiment's metrics, once each. */
export function checkSettings(s: ExperimentSettings | undefined, metricKeys: readonly string[]): ExperimentSettings {
  const settings = s ?? create(ExperimentSettingsSchema);
  const seen = new Set<string>();
  for (const p of settings.priors) {
    if (!metricKeys.includes(p.metricKey)) throw invalidArgument(`settings.priors: metric_key "${p.metricKey}" is not one of the experiment's metrics`);
    if (seen.has(p.metricKey)) throw invalidArgument(`settings.priors: metric_key "${p.metricKey}" appears more than once`);
    seen.add(p.metricKey);
  }
  return settings;
}

const CORRECTIONS = {
  [Correction.UNSPECIFIED]: "benjamini-hochberg",
  [Correction.BENJAMINI_HOCHBERG]: "benjamini-hochberg",
  [Correction.HOLM]: "holm",
  [Correction.NONE]: "none",
} as const;

/** The stats library's options for these settings; `confidenceLevel` (0 = the settings') overrides the level. */
export function analysisOptions(s: ExperimentSettings, confidenceLevel = 0): AnalysisOptions & { alpha: number } {
  const level = confidenceLevel > 0 ? confidenceLevel : s.confidenceLevel > 0 ? s.confidenceLevel : 0.95;
  return {
    alpha: 1 - level,
    engine: s.engine === StatisticsEngine.BAYESIAN ? "bayesian" : "frequentist",
    scale: s.scale === LiftScale.ABSOLUTE ? "absolute" : "relative",
    sides: s.sides === TestSides.ONE_SIDED ? "one" : "two",
    correction: CORRECTIONS[s.correction],
    sequential: s.sequential,
    sequentialTuningUnits: s.sequentialTuningUnits > 0n ? Number(s.sequentialTuningUnits) : 10_000,
    cuped: !s.disableCuped,
    priors: Object.fromEntries(s.priors.map((p) => [p.metricKey, { mean: p.mean, standardDeviation: p.standardDeviation }])),
    chanceToWinThreshold: s.chanceToWinThreshold > 0 ? s.chanceToWinThreshold : 0.95,
    riskThreshold: s.riskThreshold > 0 ? s.riskThreshold : 0.0025,
  };
}
