/**
 * Explanations for vane.evaluation.v1 (`explain`): the engine's walk of the flag's JSON Logic,
 * mapped back onto the flag's rules as written (the snapshot carries them): the flags service
 * compiles rules into one `if` chain — rule i's conditions (AND-ed, a rollout's guard last) at
 * operand 2i, its outcome at 2i + 1, a last unconditional rule as the else — so each rule and
 * condition is found at a known place in the trace. Targeting that is not Vane rules (a flagd
 * file) is explained by its steps alone. Off the hot path: only built when asked for.
 */
import { create, fromJson, type JsonValue } from "@bufbuild/protobuf";
import { ValueSchema, type Value } from "@bufbuild/protobuf/wkt";
import {
  type BucketExplanation,
  BucketExplanationSchema,
  type ConditionExplanation,
  ConditionExplanationSchema,
  type Evaluation,
  EvaluationSchema,
  type Explanation,
  ExplanationSchema,
  type LogicStep,
  LogicStepSchema,
  type RuleExplanation,
  RuleExplanationSchema,
} from "#gen/vane/evaluation/v1/evaluation_service_pb.js";
import type { Condition, Rule } from "#gen/vane/flags/v1/flags_pb.js";
import { bucketOf, type BucketTrace, type EvaluationContext, explainFlag, type FlagExplanation, murmur3Utf8, type TraceNode } from "#engine";
import type { EnvironmentState } from "./snapshots/store.ts";

/** Steps per explanation; a longer trace is cut (`steps_truncated`). */
export const MAX_STEPS = 1000;
/** Buckets of a layer (services/flags/targeting/compile.ts LAYER_BUCKETS). */
const LAYER_BUCKETS = 10_000;

/** The evaluation with its explanation (a copy: evaluations are shared, never mutated). */
export function withExplanation(e: Evaluation, state: EnvironmentState, key: string, context: EvaluationContext): Evaluation {
  return create(EvaluationSchema, { ...e, explanation: explain(state, key, context) });
}

/** Explains how `key` evaluates for `context` in the environment. */
export function explain(state: EnvironmentState, key: string, context: EvaluationContext): Explanation {
  const ex = explainFlag(state.evaluationDefinition, key, context, { extensions: state.source === "kv" });
  const out = create(ExplanationSchema, { matchedRuleIndex: -1 });
  const prefix = `flags.${key}.`;
  flatten(ex.trace, 0, prefix, out);
  const rules = state.rules.get(key) ?? [];
  const matched = ex.trace && rules.length > 0 ? explainRules(ex.trace, rules, context, out) : undefined;
  out.summary = summarize(ex, rules, matched);
  return out;
}

function value(v: unknown): Value | undefined {
  if (v === undefined) return undefined;
  if (typeof v === "number" && !Number.isFinite(v)) return fromJson(ValueSchema, String(v));
  try {
    return fromJson(ValueSchema, v as JsonValue);
  } catch {
    return fromJson(ValueSchema, String(v));
  }
}

function bucketOut(b: BucketTrace): BucketExplanation {
  return create(BucketExplanationSchema, {
    bucketingValue: b.bucketingValue,
    bucket: BigInt(b.bucket),
    totalWeight: BigInt(b.totalWeight),
    variant: b.variant === null ? "" : String(b.variant),
    percent: (b.bucket * 100) / b.totalWeight,
  });
}

function flatten(n: TraceNode | undefined, depth: number, prefix: string, out: Explanation): void {
  if (!n) return;
  if (out.steps.length >= MAX_STEPS) {
    out.stepsTruncated = true;
    return;
  }
  const step: LogicStep = create(LogicStepSchema, {
    path: n.path.startsWith(prefix) ? n.path.slice(prefix.length) : n.path,
    operator: n.op,
    depth,
    expression: n.expression === undefined ? undefined : value(n.expression),
    result: value(n.result),
    truthy: n.truthy,
    branch: n.branch ?? 0,
    ref: n.ref ?? "",
    bucket: n.bucket ? bucketOut(n.bucket) : undefined,
    error: n.error ?? "",
  });
  for (const [name, v] of Object.entries(n.variables ?? {})) step.variables[name] = value(v ?? null)!;
  out.steps.push(step);
  for (const c of n.children) flatten(c, depth + 1, prefix, out);
}

/** Maps the root `if` chain onto the rules; returns the index of the rule that served the value. */
function explainRules(root: TraceNode, rules: readonly Rule[], context: EvaluationContext, out: Explanation): number | undefined {
  if (root.op !== "if") return undefined;
  // The chain has one (condition, outcome) pair per rule, except a last unconditional rule,
  // which is the else (unless it is the only rule: then it is a pair with the condition `true`).
  const elseRule = rules.length > 1 && isUnconditional(rules.at(-1)!) ? rules.length - 1 : -1;
  const pairCount = elseRule >= 0 ? rules.length - 1 : rules.length;
  const at = (i: number) => root.children.find((c) => c.index === i);
  let matched: number | undefined;
  for (let i = 0; i < rules.length; i++) {
    const rule = rules[i];
    const r = create(RuleExplanationSchema, { index: i, id: rule.id, description: rule.description });
    if (i === elseRule) {
      // Reached only when every earlier rule failed: the else branch.
      if (root.branch !== 2 * pairCount) break;
      r.matched = true;
    } else {
      const cond = at(2 * i);
      if (!cond) break;
      r.matched = cond.truthy;
      explainConditions(rule, cond, context, r);
    }
    const outcome = r.matched ? at(i === elseRule ? 2 * pairCount : 2 * i + 1) : undefined;
    if (outcome) {
      r.variant = outcome.result === null || outcome.result === undefined ? "" : String(outcome.result);
      const split = findBucket(outcome);
      if (split) r.rollout = bucketOut(split);
      matched = i;
    }
    out.rules.push(r);
    if (r.matched) break;
  }
  if (matched !== undefined) {
    out.matchedRuleIndex = matched;
    out.matchedRuleId = rules[matched].id;
    out.matchedRuleDescription = rules[matched].description;
  }
  return matched;
}

function isUnconditional(rule: Rule): boolean {
  return rule.conditions.length === 0 && rule.outcome?.kind.case !== "rollout";
}

function findBucket(n: TraceNode): BucketTrace | undefined {
  if (n.bucket) return n.bucket;
  for (const c of n.children) {
    const b = findBucket(c);
    if (b) return b;
  }
  return undefined;
}

/** The rule's conditions (and a rollout's guard, last) in its condition node. */
function explainConditions(rule: Rule, cond: TraceNode, context: EvaluationContext, r: RuleExplanation): void {
  const guarded = rule.outcome?.kind.case === "rollout";
  const total = rule.conditions.length + (guarded ? 1 : 0);
  // One part: the node is that part; several: an `and` over them; none: the literal `true`.
  const part = (j: number): TraceNode | undefined => (total === 1 ? (j === 0 ? cond : undefined) : cond.children.find((c) => c.index === j));
  rule.conditions.forEach((c, j) => r.conditions.push(explainCondition(c, j, part(j), context)));
  if (guarded) {
    const g = part(rule.conditions.length);
    r.hasBucketingValue = g?.truthy ?? false;
  }
}

function explainCondition(c: Condition, index: number, n: TraceNode | undefined, context: EvaluationContext): ConditionExplanation {
  const out = create(ConditionExplanationSchema, { index, condition: c, evaluated: n !== undefined, matched: n?.truthy ?? false });
  if (!n) return out;
  out.error = firstError(n) ?? "";
  switch (c.kind.case) {
    case "attribute":
      out.actual = actualOf(n, c.kind.value.attribute);
      break;
    case "segment": {
      const ref = findRef(n);
      out.segmentMember = ref?.truthy ?? false;
      break;
    }
    case "layer": {
      const attribute = c.kind.value.bucketBy || "targetingKey";
      out.actual = actualOf(n, attribute);
      const unit = variableOf(n, attribute) ?? (attribute === "targetingKey" ? context.targetingKey : undefined);
      if (unit !== undefined && unit !== null && unit !== "") {
        const hashed = `layer:${c.kind.value.layerKey}/${String(unit as string)}`;
        const bucket = bucketOf(murmur3Utf8(hashed), LAYER_BUCKETS);
        const slice = bucket < c.kind.value.start ? "before" : bucket < c.kind.value.end ? "in" : "after";
        out.layerBucket = bucketOut({ bucketingValue: hashed, bucket, totalWeight: LAYER_BUCKETS, variant: slice });
      }
      break;
    }
    default:
      break;
  }
  return out;
}

function variableOf(n: TraceNode, name: string): unknown {
  if (n.variables && Object.hasOwn(n.variables, name)) return n.variables[name];
  for (const c of n.children) {
    const v = variableOf(c, name);
    if (v !== undefined) return v;
  }
  return undefined;
}

function actualOf(n: TraceNode, attribute: string): Value | undefined {
  const v = variableOf(n, attribute);
  return v === undefined || v === null ? undefined : value(v);
}

function findRef(n: TraceNode): TraceNode | undefined {
  if (n.op === "$ref") return n;
  for (const c of n.children) {
    const r = findRef(c);
    if (r) return r;
  }
  return undefined;
}

function firstError(n: TraceNode): string | undefined {
  if (n.error) return n.error;
  for (const c of n.children) {
    const e = firstError(c);
    if (e) return e;
  }
  return undefined;
}

function summarize(ex: FlagExplanation, rules: readonly Rule[], matched: number | undefined): string {
  const served = (variant: string | undefined) => (variant === undefined ? "the caller's code default applies" : `served "${variant}"`);
  switch (ex.reason) {
    case "DISABLED":
      return "the flag is off in this environment: the caller's code default applies";
    case "STATIC":
      return `no targeting: ${served(ex.variant)} (the default variant)`;
    case "ERROR":
      return `the evaluation failed: ${ex.errorMessage ?? ex.errorCode ?? "error"}`;
    case "DEFAULT":
      if (!ex.trace) return `no targeting: ${served(undefined)}`;
      return `${rules.length > 0 ? "no rule matched" : "targeting chose nothing"}: ${ex.variant === undefined ? served(undefined) : `served the default variant "${ex.variant}"`}`;
    default: {
      if (matched === undefined) return `targeting chose "${ex.variant}"`;
      const rule = rules[matched];
      const name = rule.description ? ` "${rule.description}"` : rule.id ? ` (${rule.id})` : "";
      return `rules[${matched}]${name} matched: ${served(ex.variant)}`;
    }
  }
}
