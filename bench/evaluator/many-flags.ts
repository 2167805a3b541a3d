/** Generated flag files for the bulk benchmarks (ofrep.bench.ts, bulk.bench.ts). */

/** `n` flags (flagd file JSON) of four kinds, in turn: static, attribute rule, fractional rollout, semver. */
export function manyFlags(n: number): string {
  const flags: Record<string, unknown> = {};
  for (let i = 0; i < n; i++) {
    const variants = { on: true, off: false };
    const kind = i % 4;
    flags[`flag-${i}`] = {
      state: "ENABLED",
      variants,
      defaultVariant: "off",
      ...(kind === 1 ? { targeting: { if: [{ in: [{ var: "plan" }, ["pro", "enterprise"]] }, "on", "off"] } } : {}),
      ...(kind === 2 ? { targeting: { fractional: [{ cat: [{ var: "$flagd.flagKey" }, { var: "targetingKey" }] }, ["on", 25], ["off", 75]] } } : {}),
      ...(kind === 3 ? { targeting: { if: [{ sem_ver: [{ var: "version" }, ">=", "2.0.0"] }, "on", null] } } : {}),
    };
  }
  return JSON.stringify({ flags });
}
