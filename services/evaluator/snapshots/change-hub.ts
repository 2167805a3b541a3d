/**
 * Fans store changes out to streams, by environment, so a change wakes only the streams that
 * follow that environment. A stream reads its changes as an async queue that never grows past
 * one pending wake-up per change burst (streams re-read the latest state when they wake).
 */
import type { EnvironmentChange, SnapshotStore } from "./store.ts";

/** Streams woken per turn of the event loop. */
const WAKE_SLICE = 50;

/** A stream's view of the changes it follows. */
export interface ChangeQueue {
  /** Resolves with the changes since the last call (at least one), or undefined once `signal` aborts. */
  next(): Promise<EnvironmentChange[] | undefined>;
  close(): void;
}

/** The hub. */
export interface ChangeHub {
  /** Follows one environment, or every environment with "*". */
  follow(environmentId: string, signal: AbortSignal): ChangeQueue;
  /**
   * Waits for the environment: "loaded" once it is held, "unknown" when the store's initial
   * load finished without it (it does not exist), "aborted" when `signal` aborts first.
   */
  loaded(environmentId: string, signal: AbortSignal): Promise<"loaded" | "unknown" | "aborted">;
  stop(): void;
}

/** Creates a hub over the store. */
export function createChangeHub(store: SnapshotStore): ChangeHub {
  const followers = new Map<string, Set<(c: EnvironmentChange) => void>>();
  const add = (id: string, f: (c: EnvironmentChange) => void) => {
    let set = followers.get(id);
    if (!set) followers.set(id, (set = new Set()));
    set.add(f);
    return () => {
      set.delete(f);
      if (set.size === 0 && followers.get(id) === set) followers.delete(id);
    };
  };
  // Followers are woken a slice at a time, with a turn of the event loop between slices, so the
  // first streams' messages are written while later ones are still being evaluated (instead of
  // every stream's work finishing before any byte leaves).
  const unsubscribe = store.subscribe((change) => {
    const woken = [...(followers.get(change.environmentId) ?? []), ...(followers.get("*") ?? [])];
    const wake = (from: number) => {
      for (let i = from; i < Math.min(from + WAKE_SLICE, woken.length); i++) woken[i](change);
      if (from + WAKE_SLICE < woken.length) setImmediate(wake, from + WAKE_SLICE);
    };
    wake(0);
  });

  return {
    follow(environmentId, signal) {
      let pending: EnvironmentChange[] = [];
      let wake: (() => void) | undefined;
      const remove = add(environmentId, (c) => {
        pending.push(c);
        wake?.();
      });
      const onAbort = () => wake?.();
      signal.addEventListener("abort", onAbort, { once: true });
      const close = () => {
        remove();
        signal.removeEventListener("abort", onAbort);
      };
      return {
        async next() {
          while (pending.length === 0 && !signal.aborted) await new Promise<void>((r) => (wake = r));
          wake = undefined;
          if (signal.aborted) {
            close();
            return undefined;
          }
          const out = pending;
          pending = [];
          return out;
        },
        close,
      };
    },
    async loaded(environmentId, signal) {
      if (store.get(environmentId)) return "loaded";
      const q = this.follow(environmentId, signal);
      const initialLoad = store.initialLoad.then(() => "initial load done" as const);
      try {
        for (;;) {
          if (store.get(environmentId)) return "loaded";
          if (store.initialLoadDone) return "unknown";
          if ((await Promise.race([q.next(), initialLoad])) === undefined) return "aborted";
        }
      } finally {
        q.close();
      }
    },
    stop: unsubscribe,
  };
}
