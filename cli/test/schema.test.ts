/**
 * The flags-as-code JSON Schema stays in sync with the contract: its enums and key patterns are
 * the proto's, and every shape the contract can hold converts to a file the schema accepts and
 * back to the same message.
 */
import { readFile } from "node:fs/promises";
import { create, equals } from "@bufbuild/protobuf";
import { Ajv } from "ajv";
import { describe, expect, it } from "vitest";
import { FlagType, Operator, RuleSchema } from "#gen/vane/flags/v1/flags_pb.js";
import schema from "../schema/vane-flags.schema.json" with { type: "json" };
import { ruleFromSpec, ruleToSpec } from "../src/spec/model.ts";
import { enumName } from "../src/shapes.ts";

const names = (e: Record<string, string | number>) =>
  Object.values(e)
    .filter((v): v is number => typeof v === "number" && v !== 0)
    .map((v) => enumName(e, v));

describe("cli/schema/vane-flags.schema.json", () => {
  it("lists exactly the contract's operators and flag types", () => {
    expect(schema.definitions.operator.enum).toEqual(names(Operator));
    expect(schema.definitions.flag.properties.type.enum).toEqual(names(FlagType));
  });

  it("uses the contract's key patterns", async () => {
    const flagsProto = await readFile(new URL("../../proto/vane/flags/v1/flags.proto", import.meta.url), "utf8");
    const serviceProto = await readFile(new URL("../../proto/vane/flags/v1/flag_service.proto", import.meta.url), "utf8");
    const pattern = (text: string, field: string) =>
      new RegExp(`${field} = \\d+ \\[\\(buf\\.validate\\.field\\)\\.string\\.pattern = "([^"]+)"`).exec(text)![1].replace(/\\\\/g, "\\");
    expect(schema.definitions.variantKey.pattern).toBe(pattern(flagsProto, "string key"));
    expect(schema.definitions.key128.pattern).toBe(pattern(serviceProto, "string key"));
  });

  it("holds every condition and outcome kind, and converts back to the same rule", () => {
    const validate = new Ajv({ strict: false }).compile(schema);
    const rules = [
      create(RuleSchema, {
        id: "r1",
        description: "staff and beta",
        conditions: [
          {
            kind: {
              case: "attribute",
              value: { attribute: "email", operator: Operator.ENDS_WITH, values: [{ kind: { case: "stringValue", value: "@x.com" } }] },
            },
          },
          { kind: { case: "segment", value: { segmentKey: "beta", negate: true } } },
          { kind: { case: "layer", value: { layerKey: "checkout", start: 0, end: 5000, bucketBy: "" } } },
          { kind: { case: "jsonLogic", value: { kind: { case: "boolValue", value: true } } } },
        ],
        outcome: {
          kind: {
            case: "rollout",
            value: {
              bucketBy: "accountId",
              seed: "s",
              variants: [
                { variant: "on", weight: 25 },
                { variant: "off", weight: 75 },
              ],
            },
          },
        },
      }),
      create(RuleSchema, { id: "r2", outcome: { kind: { case: "variant", value: "on" } } }),
      create(RuleSchema, { id: "r3", outcome: { kind: { case: "jsonLogic", value: { kind: { case: "stringValue", value: "on" } } } } }),
    ];
    for (const rule of rules) {
      const spec = ruleToSpec(rule);
      const file = { flags: { f: { type: "boolean", variants: { on: true, off: false }, environments: { development: { enabled: true, rules: [spec] } } } } };
      expect(validate(file), JSON.stringify(validate.errors)).toBe(true);
      expect(equals(RuleSchema, ruleFromSpec(spec, rule.id), rule)).toBe(true);
    }
  });
});
