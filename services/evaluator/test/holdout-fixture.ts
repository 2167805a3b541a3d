/**
 * A flag set as the flags service compiles it for an environment with a holdout: two flags whose
 * first rule is the holdout's (written by analytics), then a launch to everyone ("launched") or a
 * seeded rollout ("split"), both serving "on"; the default is "off".
 */
import { create, fromJson } from "@bufbuild/protobuf";
import { ValueSchema } from "@bufbuild/protobuf/wkt";
import type { FlagSetDefinition } from "#engine";
import { FlagType, type Rule, RuleSchema, VariantSchema } from "#gen/vane/flags/v1/flags_pb.js";
import { holdoutRule } from "../../analytics/holdouts.ts";
import { toFlagSet } from "../../flags/environment-config.ts";

export function heldOutFlagSet(holdoutId: string, buckets: number): FlagSetDefinition {
  const variants = ["off", "on"].map((key) => create(VariantSchema, { key, value: fromJson(ValueSchema, key) }));
  const rule = holdoutRule({ id: holdoutId, key: "h" }, buckets);
  const launch = create(RuleSchema, { id: "all", outcome: { kind: { case: "variant", value: "on" } } });
  const rollout = create(RuleSchema, { id: "r", outcome: { kind: { case: "rollout", value: { seed: "s", variants: [{ variant: "on", weight: 1 }] } } } });
  const flag = (key: string, next: Rule) => ({
    key,
    type: FlagType.STRING,
    variants,
    clientVisible: false,
    environment: { enabled: true, defaultVariant: "off", rules: [rule, next] },
  });
  return toFlagSet({
    organizationId: "o",
    projectId: "p",
    environmentId: "e",
    version: 1n,
    committedAt: new Date(),
    segments: [],
    flags: [flag("launched", launch), flag("split", rollout)],
  }).def;
}
