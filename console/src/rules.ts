/**
 * The targeting rules editor's model: each rule as a draft a form can hold (values as the text a
 * person typed, JSON Logic as text), converted to the contract's `Rule` on save with every
 * problem named at its field, and described in words for the review before saving.
 */
import { create, fromJson, type JsonValue, toJson } from "@bufbuild/protobuf";
import { ValueSchema } from "@bufbuild/protobuf/wkt";
import { type Condition, ConditionSchema, Operator, type Outcome, OutcomeSchema, type Rule, RuleSchema } from "#gen/vane/flags/v1/flags_pb.js";
import { type Share, total } from "./rollout.ts";

export type ConditionDraft =
  | { kind: "attribute"; attribute: string; operator: Operator; values: string }
  | { kind: "segment"; segmentKey: string; negate: boolean }
  | { kind: "json"; text: string }
  /** Layer conditions (experiments' slices) are kept as they are: the experiments page owns them. */
  | { kind: "kept"; condition: Condition; summary: string };

export type OutcomeDraft =
  | { kind: "variant"; variant: string }
  | { kind: "rollout"; shares: Share[]; bucketBy: string; seed: string; experimentId: string }
  | { kind: "json"; text: string };

export interface RuleDraft {
  /** Stable within the flag ("" for a new rule: the server assigns one). */
  id: string;
  /** Identifies the draft in the page (React key, drag and drop), new rules included. */
  uid: string;
  description: string;
  conditions: ConditionDraft[];
  outcome: OutcomeDraft;
}

/** Every operator the API has, in the order a person looks for them, with its words. */
export const OPERATORS: { op: Operator; label: string; hint: string }[] = [
  { op: Operator.EQUALS, label: "is", hint: "one value" },
  { op: Operator.NOT_EQUALS, label: "is not", hint: "one value" },
  { op: Operator.IN, label: "is one of", hint: "values, comma-separated" },
  { op: Operator.NOT_IN, label: "is none of", hint: "values, comma-separated" },
  { op: Operator.CONTAINS, label: "contains", hint: "text" },
  { op: Operator.STARTS_WITH, label: "starts with", hint: "text" },
  { op: Operator.ENDS_WITH, label: "ends with", hint: "text" },
  { op: Operator.MATCHES, label: "matches regex", hint: "pattern, then optional flags i, m, s" },
  { op: Operator.LESS_THAN, label: "<", hint: "a number" },
  { op: Operator.LESS_THAN_OR_EQUAL, label: "≤", hint: "a number" },
  { op: Operator.GREATER_THAN, label: ">", hint: "a number" },
  { op: Operator.GREATER_THAN_OR_EQUAL, label: "≥", hint: "a number" },
  { op: Operator.BEFORE, label: "before (date)", hint: "an RFC 3339 date; the attribute in Unix seconds" },
  { op: Operator.AFTER, label: "after (date)", hint: "an RFC 3339 date; the attribute in Unix seconds" },
  { op: Operator.SEMVER_EQUAL, label: "version =", hint: "a semantic version" },
  { op: Operator.SEMVER_NOT_EQUAL, label: "version ≠", hint: "a semantic version" },
  { op: Operator.SEMVER_LESS_THAN, label: "version <", hint: "a semantic version" },
  { op: Operator.SEMVER_LESS_THAN_OR_EQUAL, label: "version ≤", hint: "a semantic version" },
  { op: Operator.SEMVER_GREATER_THAN, label: "version >", hint: "a semantic version" },
  { op: Operator.SEMVER_GREATER_THAN_OR_EQUAL, label: "version ≥", hint: "a semantic version" },
  { op: Operator.SEMVER_TILDE, label: "version ~ (same minor)", hint: "a semantic version" },
  { op: Operator.SEMVER_CARET, label: "version ^ (same major)", hint: "a semantic version" },
];
const labelOf = (op: Operator) => OPERATORS.find((o) => o.op === op)?.label ?? Operator[op];
const NUMERIC = new Set([Operator.LESS_THAN, Operator.LESS_THAN_OR_EQUAL, Operator.GREATER_THAN, Operator.GREATER_THAN_OR_EQUAL]);
const LISTS = new Set([Operator.IN, Operator.NOT_IN]);

let next = 0;
/** A fresh draft id for the page. */
export const newUid = () => `r${++next}`;

/** Values as a person types them: comma-separated; "quoted" is always text; numbers and true/false otherwise. */
export function parseValues(text: string, op: Operator): JsonValue[] {
  if (op === Operator.MATCHES) {
    const [pattern, flags] = splitList(text);
    return flags ? [pattern, flags] : [pattern ?? ""];
  }
  const parts = LISTS.has(op) ? splitList(text) : [text.trim()];
  return parts.map((p) => {
    if (/^".*"$/.test(p)) return p.slice(1, -1);
    if (NUMERIC.has(op) || /^-?\d+(\.\d+)?$/.test(p)) return p !== "" && Number.isFinite(Number(p)) ? Number(p) : p;
    if (p === "true" || p === "false") return p === "true";
    return p;
  });
}
const splitList = (text: string) =>
  text
    .split(",")
    .map((s) => s.trim())
    .filter((s) => s !== "");

/** The values as text the form shows (the inverse of {@link parseValues}). */
export function formatValues(values: JsonValue[], op: Operator): string {
  return values
    .map((v) =>
      typeof v === "string" && op !== Operator.MATCHES && (/^-?\d+(\.\d+)?$/.test(v) || v === "true" || v === "false" || v.includes(","))
        ? `"${v}"`
        : String(v),
    )
    .join(", ");
}

/** The saved rule as a draft. */
export function ruleToDraft(rule: Rule): RuleDraft {
  const conditions: ConditionDraft[] = rule.conditions.map((c) => {
    switch (c.kind.case) {
      case "attribute": {
        const a = c.kind.value;
        return {
          kind: "attribute",
          attribute: a.attribute,
          operator: a.operator,
          values: formatValues(
            a.values.map((v) => toJson(ValueSchema, v)),
            a.operator,
          ),
        };
      }
      case "segment":
        return { kind: "segment", segmentKey: c.kind.value.segmentKey, negate: c.kind.value.negate };
      case "jsonLogic":
        return { kind: "json", text: JSON.stringify(toJson(ValueSchema, c.kind.value), null, 2) };
      case "layer":
        return { kind: "kept", condition: c, summary: `in layer ${c.kind.value.layerKey} buckets ${c.kind.value.start}–${c.kind.value.end}` };
      default:
        return { kind: "kept", condition: c, summary: "an unknown condition" };
    }
  });
  const o = rule.outcome?.kind;
  let outcome: OutcomeDraft;
  if (o?.case === "rollout") {
    const sum = o.value.variants.reduce((a, v) => a + v.weight, 0) || 1;
    outcome = {
      kind: "rollout",
      shares: o.value.variants.map((v) => ({ variant: v.variant, percent: Math.round((v.weight * 100) / sum) })),
      bucketBy: o.value.bucketBy,
      seed: o.value.seed,
      experimentId: o.value.experimentId,
    };
  } else if (o?.case === "jsonLogic") outcome = { kind: "json", text: JSON.stringify(toJson(ValueSchema, o.value), null, 2) };
  else outcome = { kind: "variant", variant: o?.case === "variant" ? o.value : "" };
  return { id: rule.id, uid: newUid(), description: rule.description, conditions, outcome };
}

/** A problem at one field of one rule: `field` names the form control it belongs to. */
export interface RuleProblem {
  rule: number;
  field: string;
  message: string;
}

/** The drafts as the contract's rules, or every problem found (nothing is sent while there are any). */
export function draftsToRules(drafts: readonly RuleDraft[], variants: readonly string[]): { rules: Rule[]; problems: RuleProblem[] } {
  const problems: RuleProblem[] = [];
  const rules = drafts.map((d, i) => {
    const problem = (field: string, message: string) => problems.push({ rule: i, field, message });
    const json = (text: string, field: string): JsonValue | undefined => {
      try {
        return JSON.parse(text) as JsonValue;
      } catch (err) {
        problem(field, `not JSON: ${(err as Error).message}`);
        return undefined;
      }
    };
    const conditions = d.conditions.map((c, j): Condition => {
      switch (c.kind) {
        case "attribute": {
          if (c.attribute.trim() === "") problem(`condition-${j}-attribute`, "name the attribute, e.g. email or plan");
          const values = parseValues(c.values, c.operator);
          if (values.length === 0 || values.every((v) => v === "")) problem(`condition-${j}-values`, "give a value to compare with");
          if (NUMERIC.has(c.operator) && values.some((v) => typeof v !== "number")) problem(`condition-${j}-values`, "give a number");
          return create(ConditionSchema, {
            kind: { case: "attribute", value: { attribute: c.attribute.trim(), operator: c.operator, values: values.map((v) => fromJson(ValueSchema, v)) } },
          });
        }
        case "segment":
          if (c.segmentKey === "") problem(`condition-${j}-segment`, "choose a segment");
          return create(ConditionSchema, { kind: { case: "segment", value: { segmentKey: c.segmentKey, negate: c.negate } } });
        case "json": {
          const v = json(c.text, `condition-${j}-json`);
          return create(ConditionSchema, { kind: { case: "jsonLogic", value: fromJson(ValueSchema, v ?? null) } });
        }
        case "kept":
          return c.condition;
      }
    });
    let outcome: Outcome;
    const o = d.outcome;
    if (o.kind === "variant") {
      if (!variants.includes(o.variant)) problem("outcome-variant", "choose the variant to serve");
      outcome = create(OutcomeSchema, { kind: { case: "variant", value: o.variant } });
    } else if (o.kind === "rollout") {
      if (total(o.shares) !== 100) problem("outcome-rollout", `the shares add up to ${total(o.shares)}%, not 100%`);
      const variants = o.shares.map((s) => ({ variant: s.variant, weight: s.percent }));
      outcome = create(OutcomeSchema, {
        kind: { case: "rollout", value: { bucketBy: o.bucketBy.trim(), seed: o.seed, experimentId: o.experimentId, variants } },
      });
    } else {
      const v = json(o.text, "outcome-json");
      outcome = create(OutcomeSchema, { kind: { case: "jsonLogic", value: fromJson(ValueSchema, v ?? null) } });
    }
    return create(RuleSchema, { id: d.id, description: d.description.trim(), conditions, outcome });
  });
  return { rules, problems };
}

/** One rule in words: "if email ends with @example.com and in segment beta → on". */
export function describeRule(d: RuleDraft): string {
  const conditions = d.conditions.map((c) => {
    switch (c.kind) {
      case "attribute":
        return `${c.attribute || "?"} ${labelOf(c.operator)} ${c.values || "?"}`;
      case "segment":
        return `${c.negate ? "not in" : "in"} segment ${c.segmentKey || "?"}`;
      case "json":
        return "a JSON Logic condition";
      case "kept":
        return c.summary;
    }
  });
  const o = d.outcome;
  const serve =
    o.kind === "variant"
      ? o.variant || "?"
      : o.kind === "rollout"
        ? o.shares.map((s) => `${s.variant} ${s.percent}%`).join(", ") + (o.bucketBy ? ` by ${o.bucketBy}` : "")
        : "what a JSON Logic expression returns";
  return `${conditions.length > 0 ? `if ${conditions.join(" and ")}` : "everyone"} → ${serve}`;
}

/** What changes between two rule lists, in words: added, removed, changed and moved rules. */
export function describeRuleChanges(before: readonly RuleDraft[], after: readonly RuleDraft[]): string[] {
  const words = (xs: readonly RuleDraft[]) => xs.map(describeRule);
  const b = words(before);
  const a = words(after);
  if (JSON.stringify(b) === JSON.stringify(a)) return [];
  const out: string[] = [];
  const keyOf = (d: RuleDraft) => d.id || d.uid;
  const beforeKeys = before.map(keyOf);
  const afterKeys = after.map(keyOf);
  after.forEach((d, i) => {
    const was = beforeKeys.indexOf(keyOf(d));
    if (was === -1) out.push(`Add rule ${i + 1}: ${a[i]}`);
    else if (b[was] !== a[i]) out.push(`Change rule ${i + 1}: ${b[was]} ⟶ ${a[i]}`);
  });
  before.forEach((d, i) => {
    if (!afterKeys.includes(keyOf(d))) out.push(`Remove rule ${i + 1}: ${b[i]}`);
  });
  const kept = afterKeys.filter((k) => beforeKeys.includes(k));
  if (kept.join() !== beforeKeys.filter((k) => afterKeys.includes(k)).join()) out.push("Reorder the rules (the first that matches serves)");
  return out;
}
