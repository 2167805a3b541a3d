/**
 * The percentage rollout editor's arithmetic: weights in whole percent that always sum to 100.
 * Changing one variant's share takes the difference from (or gives it to) the others, last first,
 * so the edited value is kept whenever it can be.
 */
export interface Share {
  variant: string;
  percent: number;
}

/** Sets `variant`'s share to `percent` (clamped to 0–100) and rebalances the others to a total of 100. */
export function setShare(shares: readonly Share[], variant: string, percent: number): Share[] {
  const target = Math.max(0, Math.min(100, Math.round(percent)));
  const out = shares.map((s) => ({ ...s, percent: s.variant === variant ? target : Math.max(0, Math.round(s.percent)) }));
  let excess = out.reduce((a, s) => a + s.percent, 0) - 100;
  for (let i = out.length - 1; i >= 0 && excess !== 0; i--) {
    if (out[i].variant === variant) continue;
    const change = excess > 0 ? Math.min(excess, out[i].percent) : excess;
    out[i].percent -= change;
    excess -= change;
  }
  // Only the edited variant is left to absorb the rest (a single variant, or all others at 0).
  if (excess !== 0) {
    const edited = out.find((s) => s.variant === variant);
    if (edited) edited.percent -= excess;
  }
  return out;
}

/** A `percent`% rollout of `on` over `off` (the usual "25% get the new thing"). */
export function percentRollout(on: string, off: string, percent: number): Share[] {
  return setShare(
    [
      { variant: on, percent: 0 },
      { variant: off, percent: 100 },
    ],
    on,
    percent,
  );
}

export const total = (shares: readonly Share[]): number => shares.reduce((a, s) => a + s.percent, 0);
