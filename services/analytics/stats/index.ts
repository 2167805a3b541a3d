/** Experiment statistics: pure functions over per-variant sums. See docs/statistics.md. */
export * from "./bandit.ts";
export * from "./bayes.ts";
export * from "./compare.ts";
export * from "./distributions.ts";
export * from "./estimates.ts";
export * from "./experiment.ts";
export * from "./multiple-testing.ts";
export * from "./plan.ts";
export * from "./rng.ts";
export * from "./sequential.ts";
export * from "./special.ts";
export * from "./srm.ts";
