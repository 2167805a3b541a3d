/**
 * What saving an environment's configuration will change, in words, shown before the save.
 */
export interface EnvState {
  enabled: boolean;
  defaultVariant: string;
  /** The rollout of the first rule, when it is one (variant → percent). */
  rollout: { variant: string; percent: number }[] | undefined;
  ruleCount: number;
}

export function describeChanges(before: EnvState, after: EnvState): string[] {
  const out: string[] = [];
  if (before.enabled !== after.enabled) out.push(after.enabled ? "Turn the flag ON" : "Turn the flag OFF");
  if (before.defaultVariant !== after.defaultVariant) out.push(`Default variant: ${before.defaultVariant || "(none)"} → ${after.defaultVariant || "(none)"}`);
  const fmt = (r: EnvState["rollout"]) => (r ? r.map((s) => `${s.variant} ${s.percent}%`).join(", ") : "none");
  if (fmt(before.rollout) !== fmt(after.rollout)) out.push(`Percentage rollout: ${fmt(before.rollout)} → ${fmt(after.rollout)}`);
  if (before.ruleCount !== after.ruleCount) out.push(`Rules: ${before.ruleCount} → ${after.ruleCount}`);
  return out;
}
