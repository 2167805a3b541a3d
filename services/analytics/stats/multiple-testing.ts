/**
 * Corrections for many comparisons (metrics × variants):
 * - Benjamini–Hochberg (1995) step-up adjusted p-values, controlling the false discovery rate
 *   for independent or positively dependent tests;
 * - Holm (1979) step-down Bonferroni adjusted p-values, controlling the family-wise error rate
 *   under any dependence.
 * Adjusted p-values are compared with the same alpha as unadjusted ones. NaN entries are left out
 * of the family and stay NaN.
 */

export type Correction = "benjamini-hochberg" | "holm" | "none";

/** Adjusted p-values in input order. */
export function adjustPValues(pValues: readonly number[], method: Correction): number[] {
  const out = pValues.map(() => NaN);
  const order = pValues
    .map((p, i) => ({ p, i }))
    .filter((e) => !Number.isNaN(e.p))
    .sort((a, b) => a.p - b.p);
  const m = order.length;
  if (method === "none") return pValues.slice();
  if (method === "benjamini-hochberg") {
    // adj(k) = min over j ≥ k of p(j)·m/j, walking down from the largest.
    let running = 1;
    for (let k = m - 1; k >= 0; k--) {
      running = Math.min(running, (order[k].p * m) / (k + 1));
      out[order[k].i] = running;
    }
    return out;
  }
  // Holm: adj(k) = max over j ≤ k of min(1, (m − j + 1)·p(j)), walking up from the smallest.
  let running = 0;
  for (let k = 0; k < m; k++) {
    running = Math.max(running, Math.min(1, (m - k) * order[k].p));
    out[order[k].i] = running;
  }
  return out;
}
