/**
 * Serves a flagd flag-definition file as a local environment and follows it as it changes,
 * like flagd's file source (`--uri file:…`), so a flagd user switches to Vane with one command.
 * Changes are noticed by `fs.watch` on the file's directory (editors and Kubernetes ConfigMaps
 * replace files rather than write them in place) and, as a fallback where inotify does not
 * work (network and virtualised file systems), by polling the file's modification time.
 */
import { watch, watchFile, unwatchFile, type FSWatcher } from "node:fs";
import { readFile } from "node:fs/promises";
import { basename, dirname, resolve } from "node:path";
import { FlagSetError, type FlagSetDefinition, parseFlagdJson } from "#engine";
import type { Logger } from "#lib/process/logger.ts";
import type { SnapshotStore } from "./store.ts";

/** Options for {@link createFlagdFileSource}. */
export interface FlagdFileSourceOptions {
  path: string;
  store: SnapshotStore;
  logger: Logger;
  /** The id the file is served as (default "local"); flagd callers select it with Flagd-Selector. */
  environmentId?: string;
  /** Polling interval of the fallback (default 1 s). */
  pollIntervalMs?: number;
  /** Debounce for bursts of change events (default 50 ms). */
  debounceMs?: number;
  /** Each version served, once applied (flagd-files.ts merges several files from these). */
  onLoad?: (definition: FlagSetDefinition) => void;
}

/** A running file source. */
export interface FlagdFileSource {
  readonly environmentId: string;
  /** The file, as an absolute path. */
  readonly path: string;
  /**
   * True when a flagd selector names the file the way flagd users select it: the flag set's
   * `metadata.flagSetId` (of the version served), or the path (as given, absolute, or `file:…`).
   */
  names(selector: string): boolean;
  /** Loads the file (throws with a message naming the file when it is missing or invalid), then follows it. */
  start(): Promise<void>;
  /** Re-reads the file now; resolves true when a new version was applied. */
  reload(): Promise<boolean>;
  stop(): void;
}

/** Creates the source; call `start()`. */
export function createFlagdFileSource(opts: FlagdFileSourceOptions): FlagdFileSource {
  const path = resolve(opts.path);
  const environmentId = opts.environmentId ?? "local";
  const log = opts.logger.child({ component: "flagd-file", path, environmentId });
  let version = 0;
  let flagSetId: string | undefined;
  let lastText: string | undefined;
  let watcher: FSWatcher | undefined;
  let timer: NodeJS.Timeout | undefined;
  let stopped = false;
  let chain: Promise<unknown> = Promise.resolve();

  const load = async (initial: boolean): Promise<boolean> => {
    let text: string;
    try {
      text = await readFile(path, "utf8");
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      const message = code === "ENOENT" ? `flagd file ${path} does not exist` : `flagd file ${path} cannot be read (${code ?? String(err)})`;
      if (initial) throw new Error(message, { cause: err });
      log.warn({ code }, `${message}; still serving the previous version`);
      return false;
    }
    if (text === lastText) return false;
    try {
      const definition = parseFlagdJson(text, { asFlagd: true });
      const outcome = opts.store.apply({
        environmentId,
        organizationId: "",
        projectId: "",
        version: version + 1,
        commitTimeMs: Date.now(),
        definition,
        source: "file",
      });
      if (outcome !== "applied") return false;
      version++;
      lastText = text;
      const id = definition.metadata?.flagSetId;
      flagSetId = typeof id === "string" && id !== "" ? id : undefined;
      log.info({ version }, initial ? "flagd file loaded" : "flagd file changed: new version served");
      opts.onLoad?.(definition);
      return true;
    } catch (err) {
      const message = err instanceof FlagSetError || err instanceof SyntaxError ? err.message : String(err);
      if (initial) throw new Error(`flagd file ${path} is not a valid flag definition: ${message}`, { cause: err });
      log.error({ err: message }, "flagd file is invalid; still serving the previous version");
      lastText = text; // do not log the same invalid content again on every poll
      return false;
    }
  };

  // Loads never overlap: a change during a load is read after it.
  const reload = () => {
    const next = chain.then(() => (stopped ? false : load(false)));
    chain = next.catch(() => undefined);
    return next;
  };
  const schedule = () => {
    if (stopped) return;
    clearTimeout(timer);
    timer = setTimeout(() => void reload(), opts.debounceMs ?? 50);
  };

  const paths = new Set([opts.path, path, `file:${opts.path}`, `file:${path}`]);

  return {
    environmentId,
    path,
    names: (selector) => selector === flagSetId || paths.has(selector),
    async start() {
      await load(true);
      try {
        const name = basename(path);
        watcher = watch(dirname(path), { persistent: false }, (_event, file) => {
          if (file === null || file === name || file.toString() === name) schedule();
        });
        watcher.on("error", (err) => log.warn({ err }, "fs.watch failed; relying on polling"));
      } catch (err) {
        log.warn({ err }, "fs.watch unavailable; relying on polling");
      }
      watchFile(path, { interval: opts.pollIntervalMs ?? 1000, persistent: false }, (cur, prev) => {
        if (cur.mtimeMs !== prev.mtimeMs || cur.size !== prev.size || cur.ino !== prev.ino) schedule();
      });
    },
    reload,
    stop() {
      stopped = true;
      clearTimeout(timer);
      watcher?.close();
      unwatchFile(path);
    },
  };
}
