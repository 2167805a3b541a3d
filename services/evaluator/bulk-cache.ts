/**
 * Bulk answers for repeated contexts, in memory, bounded in entries and in bytes (least recently
 * used first out). An answer is keyed by its environment and entity tag, which names the
 * configuration version, the caller's visibility, the context and the results of flags that
 * read the clock (bulk-etag.ts): a new version, or a clock flag whose result moved, is a new
 * key, so nothing stale is ever served and superseded answers age out.
 */
import type { BulkAnswer } from "./bulk-answer.ts";

/** Bounds of {@link createBulkCache}; 0 entries turns the cache off. */
export interface BulkCacheLimits {
  maxEntries: number;
  maxBytes: number;
}

export interface BulkCache {
  get(environmentId: string, etag: string): BulkAnswer | undefined;
  add(answer: BulkAnswer): void;
  /** Entries and bytes held (tests, metrics). */
  size(): { entries: number; bytes: number };
}

export function createBulkCache(limits: BulkCacheLimits): BulkCache {
  const answers = new Map<string, BulkAnswer>();
  let bytes = 0;
  const keyOf = (environmentId: string, etag: string) => `${environmentId} ${etag}`;
  return {
    get(environmentId, etag) {
      const key = keyOf(environmentId, etag);
      const a = answers.get(key);
      if (a !== undefined) {
        // Most recently used last: Map iteration order is insertion order.
        answers.delete(key);
        answers.set(key, a);
      }
      return a;
    },
    add(answer) {
      if (limits.maxEntries <= 0 || answer.bytes > limits.maxBytes) return;
      const key = keyOf(answer.state.environmentId, answer.etag);
      const before = answers.get(key);
      if (before !== undefined) {
        answers.delete(key);
        bytes -= before.bytes;
      }
      answers.set(key, answer);
      bytes += answer.bytes;
      for (const [k, a] of answers) {
        if (answers.size <= limits.maxEntries && bytes <= limits.maxBytes) break;
        answers.delete(k);
        bytes -= a.bytes;
      }
    },
    size: () => ({ entries: answers.size, bytes }),
  };
}
