/**
 * Every environment's configuration, compiled and held in memory. A new version is converted
 * and compiled by whoever feeds the store (the KV watcher, the flagd file source) — never on a
 * request — and then swapped in with a single map write, so a request sees either the old
 * version or the new one, whole. Subscribers (watch streams, flagd event and sync streams) hear
 * about each swap with the keys that changed.
 */
import { toJson } from "@bufbuild/protobuf";
import { timestampMs, ValueSchema, type Value } from "@bufbuild/protobuf/wkt";
import type { Rule } from "#gen/vane/flags/v1/flags_pb.js";
import type { EnvironmentSnapshot } from "#gen/vane/flags/v1/snapshot_pb.js";
import { compileFlagSet, toFlagdJson, type CompiledFlagSet, type FlagDefinition, type FlagSetDefinition, type JsonValue, type MetadataValue } from "#engine";

/** The flag metadata key that marks a flag as part of a running experiment. */
export const EXPERIMENT_METADATA_KEY = "experimentId";

/** Where an environment's configuration came from. */
export type SnapshotSource = "kv" | "file";

/** One environment's configuration at one version, compiled. Immutable. */
export interface EnvironmentState {
  readonly environmentId: string;
  readonly organizationId: string;
  readonly projectId: string;
  readonly version: number;
  /** When the version was committed (ms since the epoch). */
  readonly commitTimeMs: number;
  /** When this process swapped it in. */
  readonly loadedAtMs: number;
  readonly source: SnapshotSource;
  readonly definition: FlagSetDefinition;
  /** What `flags` was compiled from (explanations walk it). */
  readonly evaluationDefinition: FlagSetDefinition;
  /** Each flag's rules as written, when the snapshot carries them (explanations name them). */
  readonly rules: ReadonlyMap<string, readonly Rule[]>;
  readonly flags: CompiledFlagSet;
  /** Flags evaluable with a client key. */
  readonly clientVisible: ReadonlySet<string>;
  /** Flag key → experiment id, for flags whose metadata names an experiment. */
  readonly experiments: ReadonlyMap<string, string>;
  /** The whole flag set in flagd's JSON (built on first use, then kept). */
  flagdJson(clientOnly: boolean): string;
}

/** What changed in one environment. */
export interface EnvironmentChange {
  readonly environmentId: string;
  readonly previous: EnvironmentState | undefined;
  /** Undefined when the environment was removed. */
  readonly current: EnvironmentState | undefined;
  /** Keys whose definition (or visibility) changed, was added, or was removed. */
  readonly changedKeys: readonly string[];
}

/** A new version of an environment, in flagd's shape plus Vane's extras. */
export interface EnvironmentVersion {
  environmentId: string;
  organizationId: string;
  projectId: string;
  version: number;
  commitTimeMs: number;
  /** The flag set as flagd JSON consumers (sync streams) see it. */
  definition: FlagSetDefinition;
  /**
   * What the engine compiles, when it differs from `definition`: Vane snapshots mark each
   * experiment's assignment with the `experiment` operator, and may use Vane's other extension
   * operators (`regex_match`). Compiled with the engine's extensions on.
   */
  evaluationDefinition?: FlagSetDefinition;
  /** Client-visible keys; undefined: every flag. */
  clientVisible?: Iterable<string>;
  /** Each flag's rules as written (Vane snapshots), for explanations. */
  rules?: ReadonlyMap<string, readonly Rule[]>;
  source: SnapshotSource;
}

/** What {@link SnapshotStore.apply} did. */
export type ApplyOutcome = "applied" | "stale";

/** The in-memory configuration of every environment. */
export interface SnapshotStore {
  get(environmentId: string): EnvironmentState | undefined;
  environments(): IterableIterator<EnvironmentState>;
  readonly size: number;
  /**
   * Compiles and swaps in a version; a version not newer than the held one (from the same
   * source) is "stale" and ignored. Throws a FlagSetError when the configuration is invalid,
   * keeping the held version.
   */
  apply(version: EnvironmentVersion): ApplyOutcome;
  remove(environmentId: string): boolean;
  /** Calls `listener` after every swap; returns the unsubscribe function. */
  subscribe(listener: (change: EnvironmentChange) => void): () => void;
  /**
   * True once the feeds have delivered everything there was when they started (the KV watch
   * caught up, the flagd file read): from then on an environment not held does not exist,
   * while before it may just not have arrived yet.
   */
  readonly initialLoadDone: boolean;
  /** Resolves when {@link initialLoadDone} turns true. */
  readonly initialLoad: Promise<void>;
  /** Called by whoever assembles the feeds once they have all caught up (idempotent). */
  markInitialLoadDone(): void;
}

/** Options for {@link createSnapshotStore}. */
export interface SnapshotStoreOptions {
  /** Clock for `$flagd.timestamp` and ages (default Date.now). */
  now?: () => number;
  /** Reports a listener that threw (listeners must not break the feed). */
  onListenerError?: (err: unknown) => void;
}

/** Creates an empty store. */
export function createSnapshotStore(opts: SnapshotStoreOptions = {}): SnapshotStore {
  const now = opts.now ?? Date.now;
  const states = new Map<string, EnvironmentState>();
  const fingerprints = new Map<string, Map<string, string>>();
  const listeners = new Set<(change: EnvironmentChange) => void>();
  let initialLoadDone = false;
  let resolveInitialLoad!: () => void;
  const initialLoad = new Promise<void>((resolve) => (resolveInitialLoad = resolve));

  const notify = (change: EnvironmentChange) => {
    for (const l of listeners) {
      try {
        l(change);
      } catch (err) {
        opts.onListenerError?.(err);
      }
    }
  };

  return {
    get: (id) => states.get(id),
    environments: () => states.values(),
    get size() {
      return states.size;
    },
    apply(v) {
      const previous = states.get(v.environmentId);
      if (previous && previous.source === v.source && v.version <= previous.version) return "stale";
      const flags = compileFlagSet(v.evaluationDefinition ?? v.definition, { now, extensions: v.source === "kv" });
      const prints = flagFingerprints(v.evaluationDefinition ?? v.definition, v.clientVisible);
      const current = buildState(v, flags, now());
      states.set(v.environmentId, current);
      const old = fingerprints.get(v.environmentId);
      fingerprints.set(v.environmentId, prints);
      notify({ environmentId: v.environmentId, previous, current, changedKeys: diffKeys(old, prints) });
      return "applied";
    },
    remove(id) {
      const previous = states.get(id);
      if (!previous) return false;
      states.delete(id);
      const old = fingerprints.get(id);
      fingerprints.delete(id);
      notify({ environmentId: id, previous, current: undefined, changedKeys: [...(old?.keys() ?? [])] });
      return true;
    },
    subscribe(listener) {
      listeners.add(listener);
      return () => void listeners.delete(listener);
    },
    get initialLoadDone() {
      return initialLoadDone;
    },
    initialLoad,
    markInitialLoadDone() {
      initialLoadDone = true;
      resolveInitialLoad();
    },
  };
}

function buildState(v: EnvironmentVersion, flags: CompiledFlagSet, loadedAtMs: number): EnvironmentState {
  const clientVisible = new Set(v.clientVisible ?? flags.keys);
  const experiments = new Map<string, string>();
  for (const key of flags.keys) {
    const id = flags.flag(key)?.metadata[EXPERIMENT_METADATA_KEY];
    if (typeof id === "string" && id !== "") experiments.set(key, id);
  }
  let all: string | undefined;
  let clientOnly: string | undefined;
  return Object.freeze({
    environmentId: v.environmentId,
    organizationId: v.organizationId,
    projectId: v.projectId,
    version: v.version,
    commitTimeMs: v.commitTimeMs,
    loadedAtMs,
    source: v.source,
    definition: v.definition,
    evaluationDefinition: v.evaluationDefinition ?? v.definition,
    rules: v.rules ?? NO_RULES,
    flags,
    clientVisible,
    experiments,
    flagdJson(client: boolean) {
      if (!client) return (all ??= toFlagdJson(v.definition));
      return (clientOnly ??= toFlagdJson(onlyFlags(v.definition, clientVisible)));
    },
  });
}

const NO_RULES: ReadonlyMap<string, readonly Rule[]> = new Map();

function flagEntries(def: FlagSetDefinition): [string, FlagDefinition][] {
  return Array.isArray(def.flags) ? def.flags.map((f) => [f.key ?? "", f]) : Object.entries(def.flags);
}

function onlyFlags(def: FlagSetDefinition, keys: ReadonlySet<string>): FlagSetDefinition {
  return { ...def, flags: Object.fromEntries(flagEntries(def).filter(([k]) => keys.has(k))) };
}

// A flag "changes" when its own definition, its visibility, or anything shared (evaluators,
// flag set metadata) changes: the fingerprint covers all of them — except the flag set's
// `version`, which the flags service bumps on every commit and would make every flag "change".
function flagFingerprints(def: FlagSetDefinition, clientVisible: Iterable<string> | undefined): Map<string, string> {
  const { version: _version, ...metadata } = def.metadata ?? {};
  const shared = JSON.stringify([def.$evaluators ?? null, metadata]);
  const visible = clientVisible ? new Set(clientVisible) : undefined;
  const out = new Map<string, string>();
  for (const [key, f] of flagEntries(def)) {
    out.set(key, `${shared}|${visible ? visible.has(key) : true}|${JSON.stringify(f)}`);
  }
  return out;
}

function diffKeys(old: Map<string, string> | undefined, now: Map<string, string>): string[] {
  const changed: string[] = [];
  for (const [key, print] of now) if (old?.get(key) !== print) changed.push(key);
  if (old) for (const key of old.keys()) if (!now.has(key)) changed.push(key);
  return changed;
}

/**
 * Converts a flags-service snapshot to the flag set it describes (flagd's shape) and Vane's
 * extras. Metadata values that flagd does not allow (null, lists, objects) are left out.
 */
export function versionFromSnapshot(s: EnvironmentSnapshot): EnvironmentVersion {
  const flags: Record<string, FlagDefinition> = {};
  const clientVisible: string[] = [];
  const rules = new Map<string, readonly Rule[]>();
  for (const f of s.flags) {
    if (f.rules.length > 0) rules.set(f.key, f.rules);
    const targeting = f.targeting ? (toJson(ValueSchema, f.targeting) as JsonValue) : undefined;
    const def: FlagDefinition = {
      state: f.enabled ? "ENABLED" : "DISABLED",
      variants: mapValues(f.variants, (v) => toJson(ValueSchema, v) as JsonValue),
      defaultVariant: f.defaultVariant === "" ? null : f.defaultVariant,
    };
    if (targeting !== undefined && targeting !== null) def.targeting = targeting;
    const metadata = scalarMetadata(f.metadata);
    if (metadata) def.metadata = metadata;
    flags[f.key] = def;
    if (f.clientVisible) clientVisible.push(f.key);
  }
  const full: FlagSetDefinition = { flags };
  if (Object.keys(s.evaluators).length > 0) full.$evaluators = mapValues(s.evaluators, (v) => toJson(ValueSchema, v) as JsonValue);
  const metadata = scalarMetadata(s.metadata);
  if (metadata) full.metadata = metadata;
  const definition = withoutExtensions(full);
  return {
    evaluationDefinition: markExperiments(full),
    environmentId: s.environmentId,
    organizationId: s.organizationId,
    projectId: s.projectId,
    version: Number(s.version),
    commitTimeMs: s.createTime ? timestampMs(s.createTime) : Date.now(),
    definition,
    clientVisible,
    rules,
    source: "kv",
  };
}

function mapValues<T>(m: Record<string, Value>, f: (v: Value) => T): Record<string, T> {
  const out: Record<string, T> = {};
  for (const [k, v] of Object.entries(m)) out[k] = f(v);
  return out;
}

function scalarMetadata(m: Record<string, Value>): Record<string, MetadataValue> | undefined {
  let out: Record<string, MetadataValue> | undefined;
  for (const [k, v] of Object.entries(m)) {
    const kind = v.kind;
    if (kind.case === "stringValue" || kind.case === "numberValue" || kind.case === "boolValue") (out ??= {})[k] = kind.value;
  }
  return out;
}

/**
 * The flag set with each running experiment's assignment wrapped in the engine's `experiment`
 * operator, so a resolution says whether the experiment assigned its variant (an exposure) or
 * something else did (another rule, the default, a unit outside the layer slice). The
 * assignment is the rollout the experiment pins: a `fractional` whose bucketing value starts
 * with the experiment id (its seed; see vane.flags.v1.Rollout.experiment_id). Returns the
 * definition itself when no flag is in an experiment.
 */
export function markExperiments(def: FlagSetDefinition): FlagSetDefinition {
  let flags: Record<string, FlagDefinition> | undefined;
  for (const [key, f] of flagEntries(def)) {
    const id = f.metadata?.[EXPERIMENT_METADATA_KEY];
    if (typeof id !== "string" || id === "" || f.targeting === undefined) continue;
    flags ??= Object.fromEntries(flagEntries(def));
    flags[key] = { ...f, targeting: wrapAssignment(f.targeting, id) };
  }
  return flags ? { ...def, flags } : def;
}

function wrapAssignment(logic: JsonValue, experimentId: string): JsonValue {
  if (Array.isArray(logic)) return logic.map((x) => wrapAssignment(x, experimentId));
  if (logic === null || typeof logic !== "object") return logic;
  const keys = Object.keys(logic);
  if (keys.length === 1 && keys[0] === "fractional" && isSeededBy(logic.fractional, experimentId)) return { experiment: [experimentId, logic] };
  const out: Record<string, JsonValue> = {};
  for (const k of keys) out[k] = wrapAssignment(logic[k], experimentId);
  return out;
}

function isSeededBy(args: JsonValue, experimentId: string): boolean {
  if (!Array.isArray(args)) return false;
  const first = args[0];
  if (first === null || typeof first !== "object" || Array.isArray(first) || !Array.isArray(first.cat)) return false;
  return first.cat[0] === experimentId;
}

/**
 * The flag set as flagd itself could evaluate it: flags (and shared rules) that use Vane's
 * extension operators (`regex_match`) are left out, as ExportFlagd leaves them out, so in-process
 * flagd providers on the sync stream get a flag set they accept whole (such a flag is
 * FLAG_NOT_FOUND there, and the caller's default applies) instead of one they reject.
 */
export function withoutExtensions(def: FlagSetDefinition): FlagSetDefinition {
  const evaluators = def.$evaluators ?? {};
  const direct = (v: JsonValue): boolean => JSON.stringify(v).includes('"regex_match":');
  const refsOf = (v: JsonValue): string[] => [...JSON.stringify(v).matchAll(/"\$ref":"((?:[^"\\]|\\.)*)"/g)].map((m) => JSON.parse(`"${m[1]}"`) as string);
  const tainted = new Set(Object.keys(evaluators).filter((k) => direct(evaluators[k])));
  // Shared rules that reference tainted ones are tainted too.
  for (let grew = true; grew;) {
    grew = false;
    for (const [k, v] of Object.entries(evaluators)) if (!tainted.has(k) && refsOf(v).some((r) => tainted.has(r))) grew = tainted.add(k) !== undefined;
  }
  const uses = (f: FlagDefinition) => f.targeting !== undefined && (direct(f.targeting) || refsOf(f.targeting).some((r) => tainted.has(r)));
  const entries = flagEntries(def);
  if (tainted.size === 0 && !entries.some(([, f]) => uses(f))) return def;
  const out: FlagSetDefinition = { ...def, flags: Object.fromEntries(entries.filter(([, f]) => !uses(f))) };
  if (def.$evaluators) out.$evaluators = Object.fromEntries(Object.entries(evaluators).filter(([k]) => !tainted.has(k)));
  return out;
}
