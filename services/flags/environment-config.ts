/**
 * One environment's whole configuration, as flagd's flag-definition format (for the compile
 * guard and for export) and as vane.flags.v1.EnvironmentSnapshot (for evaluators).
 */
import { create, fromJson, toJson } from "@bufbuild/protobuf";
import { timestampFromDate, ValueSchema } from "@bufbuild/protobuf/wkt";
import { type FlagType, type Rule, type Variant, VariantSchema } from "#gen/vane/flags/v1/flags_pb.js";
import { type EnvironmentSnapshot, EnvironmentSnapshotSchema } from "#gen/vane/flags/v1/snapshot_pb.js";
import type { FlagDefinition, FlagSetDefinition, JsonValue, MetadataValue } from "#engine";
import {
  compileRules,
  compileSegment,
  experimentDimensionsOf,
  experimentOf,
  holdoutOf,
  NotExpressibleError,
  segmentRefName,
  type SegmentLike,
} from "./targeting/compile.ts";

/** A served flag and its configuration in the environment (absent: off, no default, no rules). */
export interface FlagState {
  key: string;
  type: FlagType;
  variants: readonly Variant[];
  clientVisible: boolean;
  environment?: { enabled: boolean; defaultVariant: string; rules: readonly Rule[]; metadata?: Readonly<Record<string, MetadataValue>> };
}

/** Flag metadata keys Vane writes itself (derived from the rules): never stored from a file. */
export const VANE_FLAG_METADATA: ReadonlySet<string> = new Set(["experimentId", "experimentDimensions", "holdoutId", "holdoutBuckets"]);
/** Flag-set metadata keys Vane writes itself (the environment and its config version). */
export const VANE_SET_METADATA: ReadonlySet<string> = new Set(["flagSetId", "version"]);

/** Metadata without the keys Vane overlays. */
export function withoutVaneKeys(m: Readonly<Record<string, MetadataValue>> | undefined, vane: ReadonlySet<string>): Record<string, MetadataValue> {
  return Object.fromEntries(Object.entries(m ?? {}).filter(([k]) => !vane.has(k)));
}

/** Everything in one environment at one config version. */
export interface EnvironmentState {
  organizationId: string;
  projectId: string;
  environmentId: string;
  version: bigint;
  committedAt: Date;
  /** Non-archived flags, ordered by key. */
  flags: readonly FlagState[];
  segments: readonly (SegmentLike & { key: string })[];
  /** flagd flag-set metadata imported into the environment (Vane's keys overlay it). */
  metadata?: Readonly<Record<string, MetadataValue>>;
}

const variantValue = (v: Variant): JsonValue => (v.value ? (toJson(VariantSchema, v) as { value: JsonValue }).value : null);

/** Options for {@link toFlagSet}. */
export interface ToFlagSetOptions {
  /**
   * For files handed to flagd itself: segments whose JSON contains `$` are inlined rather than
   * put in `$evaluators` (flagd (Go) substitutes references with a regex replacement, where `$`
   * in the body would be read as a group reference).
   */
  forFlagd?: boolean;
  /** Compile MATCHES to Vane's `regex_match` (snapshots) instead of skipping the flag (flagd files). */
  extensions?: boolean;
}

/** The environment in flagd's format; flags it cannot express are left out and listed with why. */
export function toFlagSet(state: EnvironmentState, options: ToFlagSetOptions = {}): { def: FlagSetDefinition; skipped: string[] } {
  const skipped: string[] = [];
  const evaluators: Record<string, JsonValue> = {};
  const broken = new Map<string, string>();
  const inlined = new Map<string, JsonValue>();
  for (const s of state.segments) {
    try {
      const body = compileSegment(s, `segments.${s.key}`, { extensions: options.extensions });
      if (options.forFlagd && JSON.stringify(body).includes("$")) inlined.set(segmentRefName(s.key), body);
      else evaluators[segmentRefName(s.key)] = body;
    } catch (err) {
      if (!(err instanceof NotExpressibleError)) throw err;
      broken.set(segmentRefName(s.key), `segment "${s.key}": ${err.message}`);
    }
  }
  const flags: Record<string, FlagDefinition> = {};
  for (const f of state.flags) {
    const env = f.environment;
    let targeting: JsonValue | null;
    try {
      targeting = env ? compileRules(env.rules, "rules", { extensions: options.extensions }) : null;
    } catch (err) {
      if (!(err instanceof NotExpressibleError)) throw err;
      skipped.push(`${f.key}: ${err.message}`);
      continue;
    }
    const refs = targeting === null ? [] : [...JSON.stringify(targeting).matchAll(/"\$ref":"([^"]*)"/g)].map((m) => m[1]);
    const bad = refs.find((r) => broken.has(r));
    if (bad) {
      skipped.push(`${f.key}: uses ${broken.get(bad)}`);
      continue;
    }
    if (targeting !== null && refs.some((r) => inlined.has(r))) targeting = substitute(targeting, inlined);
    const experimentId = env ? experimentOf(env.rules) : undefined;
    // The evaluator copies these context attributes into each exposure (results' breakdowns).
    const experimentDimensions = experimentId && env ? experimentDimensionsOf(env.rules).join(",") : "";
    // The evaluator tells held-out units by these, for the holdout's exposures.
    const holdout = env ? holdoutOf(env.rules) : undefined;
    const metadata = {
      ...env?.metadata,
      ...(experimentId ? { experimentId } : {}),
      ...(experimentDimensions ? { experimentDimensions } : {}),
      ...(holdout ? { holdoutId: holdout.id, holdoutBuckets: holdout.buckets } : {}),
    };
    flags[f.key] = {
      ...(Object.keys(metadata).length > 0 ? { metadata } : {}),
      state: env?.enabled ? "ENABLED" : "DISABLED",
      variants: Object.fromEntries(f.variants.map((v) => [v.key, variantValue(v)])),
      defaultVariant: env?.defaultVariant ? env.defaultVariant : null,
      ...(targeting !== null ? { targeting } : {}),
    };
  }
  const metadata: Record<string, MetadataValue> = { ...state.metadata, flagSetId: state.environmentId, version: String(state.version) };
  return { def: { flags, ...(Object.keys(evaluators).length > 0 ? { $evaluators: evaluators } : {}), metadata }, skipped };
}

function substitute(v: JsonValue, refs: ReadonlyMap<string, JsonValue>): JsonValue {
  if (Array.isArray(v)) return v.map((x) => substitute(x, refs));
  if (v === null || typeof v !== "object") return v;
  const keys = Object.keys(v);
  if (keys.length === 1 && keys[0] === "$ref" && typeof v.$ref === "string" && refs.has(v.$ref)) return refs.get(v.$ref)!;
  return Object.fromEntries(Object.entries(v).map(([k, x]) => [k, substitute(x, refs)]));
}

/**
 * The snapshot evaluators load: every served flag, segments as `$evaluators`, with Vane's
 * extension operators (evaluators compile snapshots with the engine's `extensions: true`).
 */
export function toSnapshot(state: EnvironmentState): EnvironmentSnapshot {
  const { def } = toFlagSet(state, { extensions: true });
  const byKey = new Map(state.flags.map((f) => [f.key, f]));
  const flagMap = def.flags as Record<string, FlagDefinition>;
  return create(EnvironmentSnapshotSchema, {
    organizationId: state.organizationId,
    projectId: state.projectId,
    environmentId: state.environmentId,
    version: state.version,
    createTime: timestampFromDate(state.committedAt),
    flags: Object.entries(flagMap).map(([key, f]) => ({
      key,
      enabled: f.state === "ENABLED",
      variants: Object.fromEntries(Object.entries(f.variants).map(([k, v]) => [k, fromJson(ValueSchema, v)])),
      defaultVariant: f.defaultVariant ?? "",
      ...(f.targeting !== undefined ? { targeting: fromJson(ValueSchema, f.targeting) } : {}),
      metadata: Object.fromEntries(Object.entries(f.metadata ?? {}).map(([k, v]) => [k, fromJson(ValueSchema, v)])),
      clientVisible: byKey.get(key)!.clientVisible,
      type: byKey.get(key)!.type,
      // Only to name rules in explanations; evaluators evaluate `targeting`.
      rules: [...(byKey.get(key)!.environment?.rules ?? [])],
    })),
    evaluators: Object.fromEntries(Object.entries(def.$evaluators ?? {}).map(([k, v]) => [k, fromJson(ValueSchema, v)])),
    metadata: Object.fromEntries(Object.entries(def.metadata ?? {}).map(([k, v]) => [k, fromJson(ValueSchema, v)])),
  });
}

/** The flag set an evaluator builds from a snapshot (what the compile guard and tests check). */
export function snapshotToFlagSet(s: EnvironmentSnapshot): FlagSetDefinition {
  const j = (v: Parameters<typeof toJson<typeof ValueSchema>>[1]) => toJson(ValueSchema, v) as JsonValue;
  const flags: Record<string, FlagDefinition> = {};
  for (const f of s.flags) {
    flags[f.key] = {
      state: f.enabled ? "ENABLED" : "DISABLED",
      variants: Object.fromEntries(Object.entries(f.variants).map(([k, v]) => [k, j(v)])),
      defaultVariant: f.defaultVariant || null,
      ...(f.targeting ? { targeting: j(f.targeting) } : {}),
    };
  }
  return {
    flags,
    $evaluators: Object.fromEntries(Object.entries(s.evaluators).map(([k, v]) => [k, j(v)])),
    metadata: Object.fromEntries(Object.entries(s.metadata).map(([k, v]) => [k, j(v) as MetadataValue])),
  };
}
