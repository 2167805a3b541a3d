/**
 * Thompson sampling (Thompson 1933) helper for multi-armed bandits: the probability that each arm
 * is best, by Monte Carlo over the arms' posteriors with a seeded generator, and traffic weights
 * derived from it. Beta posteriors for successes/trials (prior Beta(1, 1) unless given), or normal
 * posteriors given as mean and standard error.
 */
import type { BetaPrior } from "./bayes.ts";
import type { Direction } from "./compare.ts";
import { createRng } from "./rng.ts";

export type BanditArm = { successes: number; trials: number } | { mean: number; standardError: number };

export interface ThompsonOptions {
  /** Monte Carlo draws. Default 10 000. */
  draws?: number;
  /** PRNG seed; the same seed and inputs give the same answer. Default 1. */
  seed?: number;
  /** Prior for Beta arms. Default Beta(1, 1). */
  prior?: BetaPrior;
  direction?: Direction;
  /** Floor on each arm's weight so no arm starves; weights = floor + (1 − k·floor)·P(best). Default 0. */
  minWeight?: number;
}

export interface ThompsonResult {
  probabilityBest: number[];
  weights: number[];
}

export function thompsonSampling(arms: readonly BanditArm[], options: ThompsonOptions = {}): ThompsonResult {
  const { draws = 10_000, seed = 1, prior = { alpha: 1, beta: 1 }, direction = "higher", minWeight = 0 } = options;
  const k = arms.length;
  if (k === 0) return { probabilityBest: [], weights: [] };
  if (!(minWeight >= 0 && minWeight * k <= 1)) throw new RangeError("thompsonSampling: minWeight must be in [0, 1/arms]");
  const rng = createRng(seed);
  const sign = direction === "higher" ? 1 : -1;
  const wins = new Array<number>(k).fill(0);
  for (let d = 0; d < draws; d++) {
    let best = 0;
    let bestValue = -Infinity;
    for (let i = 0; i < k; i++) {
      const arm = arms[i];
      const value =
        "successes" in arm ? rng.beta(prior.alpha + arm.successes, prior.beta + arm.trials - arm.successes) : arm.mean + arm.standardError * rng.normal();
      if (sign * value > bestValue) {
        bestValue = sign * value;
        best = i;
      }
    }
    wins[best]++;
  }
  const probabilityBest = wins.map((w) => w / draws);
  const weights = probabilityBest.map((p) => minWeight + (1 - k * minWeight) * p);
  return { probabilityBest, weights };
}
