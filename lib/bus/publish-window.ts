/**
 * A bound on acknowledgements outstanding: publishers take a slot per message before publishing
 * and give it back when JetStream answers. When JetStream is slower than the callers, they wait
 * in order for slots, and a caller that cannot get its slots in time is told so (the collector
 * answers UNAVAILABLE) instead of the process buffering without limit.
 */

/** See the module comment. */
export interface PublishWindow {
  /** Takes `n` slots (at most the window's size) within `waitMs`; false when that did not happen (nothing taken). */
  acquire(n: number, waitMs: number): Promise<boolean>;
  release(n: number): void;
  /** Slots taken now. */
  inFlight(): number;
}

/** A window of `size` slots. */
export function createPublishWindow(size: number): PublishWindow {
  let used = 0;
  const waiters: { n: number; grant: () => void }[] = [];
  const grantWaiting = () => {
    while (waiters.length > 0 && used + waiters[0].n <= size) {
      const w = waiters.shift()!;
      used += w.n;
      w.grant();
    }
  };
  return {
    acquire(requested, waitMs) {
      const n = Math.min(Math.max(1, requested), size);
      // First come, first served: a small request does not overtake a large one waiting.
      if (waiters.length === 0 && used + n <= size) {
        used += n;
        return Promise.resolve(true);
      }
      return new Promise<boolean>((resolve) => {
        const w = {
          n,
          grant: () => {
            clearTimeout(timer);
            resolve(true);
          },
        };
        const timer = setTimeout(() => {
          waiters.splice(waiters.indexOf(w), 1);
          grantWaiting();
          resolve(false);
        }, waitMs);
        waiters.push(w);
      });
    },
    release(n) {
      used = Math.max(0, used - Math.min(Math.max(1, n), size));
      grantWaiting();
    },
    inFlight: () => used,
  };
}
