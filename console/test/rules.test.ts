/** The targeting rules editor's model, without a browser: values as typed, drafts ⇄ rules, problems at their fields, the review in words. */
import { create, fromJson, toJson } from "@bufbuild/protobuf";
import { ValueSchema } from "@bufbuild/protobuf/wkt";
import { describe, expect, it } from "vitest";
import { Operator, RuleSchema } from "#gen/vane/flags/v1/flags_pb.js";
import { describeRuleChanges, draftsToRules, formatValues, parseValues, type RuleDraft, ruleToDraft } from "../src/rules.ts";

const draft = (over: Partial<RuleDraft>): RuleDraft => ({
  id: "",
  uid: "d",
  description: "",
  conditions: [],
  outcome: { kind: "variant", variant: "on" },
  ...over,
});

describe("values as a person types them", () => {
  it("reads lists, numbers, booleans and quoted text", () => {
    expect(parseValues("de, fr , nl", Operator.IN)).toEqual(["de", "fr", "nl"]);
    expect(parseValues("42", Operator.EQUALS)).toEqual([42]);
    expect(parseValues('"42"', Operator.EQUALS)).toEqual(["42"]);
    expect(parseValues("true", Operator.EQUALS)).toEqual([true]);
    expect(parseValues("1.5", Operator.GREATER_THAN)).toEqual([1.5]);
    expect(parseValues("@example.com", Operator.ENDS_WITH)).toEqual(["@example.com"]);
    expect(parseValues("^beta, i", Operator.MATCHES)).toEqual(["^beta", "i"]);
    // A comma inside one value (not a list operator) stays.
    expect(parseValues("a, b", Operator.CONTAINS)).toEqual(["a, b"]);
  });
  it("writes them back so they read the same", () => {
    for (const [values, op] of [
      [["de", "fr"], Operator.IN],
      [["42", 42, true], Operator.IN],
      [["^beta", "i"], Operator.MATCHES],
    ] as const) {
      expect(parseValues(formatValues([...values], op), op)).toEqual(values);
    }
  });
});

describe("drafts and rules", () => {
  it("round-trips every kind of condition and outcome", () => {
    const rule = create(RuleSchema, {
      id: "r1",
      description: "EU beta testers",
      conditions: [
        {
          kind: {
            case: "attribute",
            value: { attribute: "country", operator: Operator.IN, values: [fromJson(ValueSchema, "de"), fromJson(ValueSchema, "fr")] },
          },
        },
        { kind: { case: "segment", value: { segmentKey: "beta", negate: true } } },
        { kind: { case: "jsonLogic", value: fromJson(ValueSchema, { "==": [{ var: "plan" }, "pro"] }) } },
        { kind: { case: "layer", value: { layerKey: "checkout", start: 0, end: 5000 } } },
      ],
      outcome: {
        kind: {
          case: "rollout",
          value: {
            bucketBy: "accountId",
            variants: [
              { variant: "on", weight: 1 },
              { variant: "off", weight: 3 },
            ],
          },
        },
      },
    });
    const d = ruleToDraft(rule);
    expect(d.outcome).toMatchObject({
      kind: "rollout",
      shares: [
        { variant: "on", percent: 25 },
        { variant: "off", percent: 75 },
      ],
      bucketBy: "accountId",
    });
    const { rules, problems } = draftsToRules([d], ["on", "off"]);
    expect(problems).toEqual([]);
    expect(toJson(RuleSchema, rules[0])).toEqual({
      ...(toJson(RuleSchema, rule) as object),
      // Weights come back as the percentages the editor shows.
      outcome: {
        rollout: {
          bucketBy: "accountId",
          variants: [
            { variant: "on", weight: 25 },
            { variant: "off", weight: 75 },
          ],
        },
      },
    });
  });

  it("names every problem at its field and sends nothing", () => {
    const { problems } = draftsToRules(
      [
        draft({
          conditions: [{ kind: "attribute", attribute: " ", operator: Operator.GREATER_THAN, values: "lots" }],
          outcome: { kind: "variant", variant: "gone" },
        }),
        draft({
          conditions: [
            { kind: "json", text: "{not json" },
            { kind: "segment", segmentKey: "", negate: false },
          ],
          outcome: { kind: "rollout", shares: [{ variant: "on", percent: 60 }], bucketBy: "", seed: "", experimentId: "" },
        }),
      ],
      ["on", "off"],
    );
    expect(problems.map((p) => `${p.rule} ${p.field}`)).toEqual([
      "0 condition-0-attribute",
      "0 condition-0-values",
      "0 outcome-variant",
      "1 condition-0-json",
      "1 condition-1-segment",
      "1 outcome-rollout",
    ]);
    expect(problems.find((p) => p.field === "outcome-rollout")?.message).toBe("the shares add up to 60%, not 100%");
  });
});

describe("the rules review", () => {
  const a = draft({ id: "a", conditions: [{ kind: "attribute", attribute: "email", operator: Operator.ENDS_WITH, values: "@example.com" }] });
  const b = draft({ id: "b", outcome: { kind: "variant", variant: "off" } });
  it("says what is added, changed, removed and moved", () => {
    expect(describeRuleChanges([a], [a, b])).toEqual(["Add rule 2: everyone → off"]);
    expect(describeRuleChanges([a, b], [b])).toEqual(["Remove rule 1: if email ends with @example.com → on"]);
    expect(describeRuleChanges([a], [{ ...a, outcome: { kind: "variant", variant: "off" } }])).toEqual([
      "Change rule 1: if email ends with @example.com → on ⟶ if email ends with @example.com → off",
    ]);
    expect(describeRuleChanges([a, b], [b, a])).toEqual(["Reorder the rules (the first that matches serves)"]);
    expect(describeRuleChanges([a, b], [a, b])).toEqual([]);
  });
});
