/**
 * Several flagd flag files served as flagd serves `--uri file:a.json --uri file:b.json`: each
 * file is its own environment (selected, as in flagd, by its flag set id or its path), and the
 * environment callers get without a selector holds every file's flags merged in flagd's order —
 * a key defined in several files takes the definition of the file listed last; removing it there
 * brings back the earlier file's. One file is served as itself, exactly as before.
 */
import type { FlagDefinition, FlagSetDefinition, JsonValue } from "#engine";
import type { Logger } from "#lib/process/logger.ts";
import { createFlagdFileSource, type FlagdFileSource } from "./file-source.ts";
import type { SnapshotStore } from "./store.ts";

/** The files, as the evaluator module uses them. */
export interface FlagdFiles {
  /** The environment of the merged flags (of the file itself when there is one). */
  readonly environmentId: string;
  /** The first file, as an absolute path. */
  readonly path: string;
  readonly paths: readonly string[];
  /** Every environment the files are served as (the merged one first). */
  readonly environments: readonly string[];
  /** The environment a flagd selector names (a file's flag set id or path), if any. */
  resolve(selector: string): string | undefined;
  /** Loads every file (throws naming the file that is missing or invalid), then follows them. */
  start(): Promise<void>;
  /** Re-reads every file now; true when a new version was applied. */
  reload(): Promise<boolean>;
  stop(): void;
}

export interface FlagdFilesOptions {
  paths: readonly string[];
  store: SnapshotStore;
  logger: Logger;
  /** The merged environment's id (default "local"); file n is `<id>:<n>` (1-based). */
  environmentId?: string;
  pollIntervalMs?: number;
}

/** Creates the files' sources; call `start()`. */
export function createFlagdFiles(opts: FlagdFilesOptions): FlagdFiles {
  const environmentId = opts.environmentId ?? "local";
  if (opts.paths.length === 0) throw new Error("no flagd file to serve");
  if (opts.paths.length === 1) {
    const only = createFlagdFileSource({ path: opts.paths[0], store: opts.store, logger: opts.logger, environmentId, pollIntervalMs: opts.pollIntervalMs });
    return {
      environmentId,
      path: only.path,
      paths: [only.path],
      environments: [environmentId],
      resolve: (selector) => (only.names(selector) ? environmentId : undefined),
      start: () => only.start(),
      reload: () => only.reload(),
      stop: () => only.stop(),
    };
  }

  const log = opts.logger.child({ component: "flagd-files", environmentId });
  const latest: (FlagSetDefinition | undefined)[] = opts.paths.map(() => undefined);
  let version = 0;
  let started = false;
  const publish = () => {
    if (latest.some((d) => d === undefined)) return;
    const outcome = opts.store.apply({
      environmentId,
      organizationId: "",
      projectId: "",
      version: ++version,
      commitTimeMs: Date.now(),
      definition: mergeFlagSets(latest as FlagSetDefinition[]),
      source: "file",
    });
    if (outcome === "applied") log.info({ version, files: opts.paths.length }, "merged flags served");
    else log.error({ outcome }, "the merged flags were not applied; still serving the previous merge");
  };
  const sources: FlagdFileSource[] = opts.paths.map((path, i) =>
    createFlagdFileSource({
      path,
      store: opts.store,
      logger: opts.logger,
      environmentId: `${environmentId}:${i + 1}`,
      pollIntervalMs: opts.pollIntervalMs,
      onLoad: (definition) => {
        latest[i] = definition;
        if (started) publish();
      },
    }),
  );
  return {
    environmentId,
    path: sources[0].path,
    paths: sources.map((s) => s.path),
    environments: [environmentId, ...sources.map((s) => s.environmentId)],
    resolve: (selector) => sources.find((s) => s.names(selector))?.environmentId,
    async start() {
      for (const s of sources) await s.start();
      started = true;
      publish();
    },
    async reload() {
      let changed = false;
      for (const s of sources) changed = (await s.reload()) || changed;
      return changed;
    },
    stop() {
      for (const s of sources) s.stop();
    },
  };
}

/**
 * Merges flag sets in order, later ones winning per flag key. Each flag keeps what it meant in
 * its own file: its file's flag set metadata (under its own) and its file's shared rules,
 * renamed `<n>:<name>` so two files' rules of the same name stay apart.
 */
export function mergeFlagSets(sets: readonly FlagSetDefinition[]): FlagSetDefinition {
  const flags: Record<string, FlagDefinition> = {};
  const $evaluators: Record<string, JsonValue> = {};
  sets.forEach((set, i) => {
    const prefix = `${i + 1}:`;
    for (const [name, rule] of Object.entries(set.$evaluators ?? {})) $evaluators[prefix + name] = renameRefs(rule, prefix);
    const entries: [string, FlagDefinition][] = Array.isArray(set.flags) ? set.flags.map((f) => [f.key ?? "", f]) : Object.entries(set.flags);
    for (const [key, flag] of entries) {
      const metadata = { ...set.metadata, ...flag.metadata };
      const { key: _key, ...rest } = flag;
      flags[key] = {
        ...rest,
        ...(flag.targeting !== undefined ? { targeting: renameRefs(flag.targeting, prefix) } : {}),
        ...(Object.keys(metadata).length > 0 ? { metadata } : {}),
      };
    }
  });
  return { flags, ...(Object.keys($evaluators).length > 0 ? { $evaluators } : {}) };
}

/** A copy of `rule` whose `{"$ref": name}` read `{"$ref": prefix + name}`. */
function renameRefs(rule: JsonValue, prefix: string): JsonValue {
  if (Array.isArray(rule)) return rule.map((r) => renameRefs(r, prefix));
  if (rule === null || typeof rule !== "object") return rule;
  const out: Record<string, JsonValue> = {};
  for (const [k, v] of Object.entries(rule)) out[k] = k === "$ref" && typeof v === "string" ? prefix + v : renameRefs(v, prefix);
  return out;
}
