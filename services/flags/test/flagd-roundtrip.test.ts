/**
 * flagd import/export: a flagd file → Vane's model → a flagd file must evaluate identically
 * (value, variant, reason, error code, and metadata apart from the flag-set keys an export
 * rewrites) for thousands of contexts, bucket boundaries included; and Vane's own
 * rules → flagd → Vane rules must keep every outcome (and, for the shapes Vane emits, the rules).
 */
import { readdirSync, readFileSync } from "node:fs";
import { create, fromJson, toJson, type JsonValue as PbJson } from "@bufbuild/protobuf";
import { ValueSchema } from "@bufbuild/protobuf/wkt";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { FlagService, ImportMode } from "#gen/vane/flags/v1/flag_service_pb.js";
import { type Condition, ConditionSchema, FlagType, Operator, type Rule, RuleSchema, VariantSchema } from "#gen/vane/flags/v1/flags_pb.js";
import { SegmentService } from "#gen/vane/flags/v1/segment_service_pb.js";
import { compileFlagSet, type CompiledFlagSet, type FlagSetDefinition, parseFlagdJson, type Resolution, toFlagdJson } from "#engine";
import { type EnvironmentState, toFlagSet, VANE_SET_METADATA } from "../environment-config.ts";
import { importFlagSet } from "../targeting/import.ts";
import { validateRules, validateVariants } from "../targeting/validate.ts";
import { boundaryContexts, generateContexts, rng } from "./contexts.ts";
import { type FlagsHarness, startFlags } from "./harness.ts";

const NOW = Date.parse("2025-11-01T12:00:00Z");
const engineData = new URL("../../../engine/testdata/", import.meta.url);
const corpusDir = new URL("./corpus/", import.meta.url);
const corpus = [
  ...readdirSync(engineData)
    .filter((f) => f.endsWith(".json"))
    .map((f) => ({ name: `engine/${f}`, text: readFileSync(new URL(f, engineData), "utf8") })),
  ...readdirSync(corpusDir)
    .filter((f) => f.endsWith(".json"))
    .map((f) => ({ name: `corpus/${f}`, text: readFileSync(new URL(f, corpusDir), "utf8") })),
];
const contexts = generateContexts(2500, 7);

/** Vane's model of a file, as one environment's state. */
function stateOf(def: FlagSetDefinition): EnvironmentState {
  const imported = importFlagSet(def);
  const segments = new Set(imported.segments.map((s) => s.key));
  for (const f of imported.flags) {
    expect(validateVariants(f.type, f.variants), f.key).toEqual([]);
    expect(validateRules(f.rules, { variants: new Set(f.variants.map((v) => v.key)), segments }), f.key).toEqual([]);
  }
  return {
    organizationId: "o",
    projectId: "p",
    environmentId: "e",
    version: 1n,
    committedAt: new Date(NOW),
    flags: imported.flags.map((f) => ({
      key: f.key,
      type: f.type,
      variants: f.variants,
      clientVisible: false,
      environment: { enabled: f.enabled, defaultVariant: f.defaultVariant, rules: f.rules, metadata: f.metadata },
    })),
    segments: imported.segments,
    metadata: imported.metadata,
  };
}

/** Exported flagd text of a state, checked by flagd's own rules (the engine's parser). */
function exportOf(state: EnvironmentState): FlagSetDefinition {
  const { def, skipped } = toFlagSet(state, { forFlagd: true });
  expect(skipped).toEqual([]);
  return parseFlagdJson(toFlagdJson(def));
}

const kinds = ["boolean", "string", "number", "object"] as const;
/**
 * The metadata a resolution carries, without what it inherits of the flag-set keys Vane overlays
 * (an export's flagSetId and version name the environment and its config version).
 */
const metadataOf = (r: Resolution, set: CompiledFlagSet) =>
  Object.fromEntries(Object.entries(r.metadata).filter(([k, v]) => !(VANE_SET_METADATA.has(k) && set.metadata[k] === v)));

/** Asserts identical resolutions (and metadata) for every flag and context; returns how many were compared. */
function assertSameOutcomes(a: CompiledFlagSet, b: CompiledFlagSet, ctxs: Record<string, unknown>[], label: string): number {
  expect([...b.keys].sort(), label).toEqual([...a.keys].sort());
  let n = 0;
  for (const key of a.keys) {
    for (const ctx of ctxs) {
      const x = a.evaluate(key, ctx);
      const y = b.evaluate(key, ctx);
      if (x.value !== y.value || x.variant !== y.variant || x.reason !== y.reason || x.errorCode !== y.errorCode) {
        if (JSON.stringify([x.value, x.variant, x.reason, x.errorCode]) !== JSON.stringify([y.value, y.variant, y.reason, y.errorCode])) {
          expect({ key, ctx, value: y.value, variant: y.variant, reason: y.reason, errorCode: y.errorCode }, label).toEqual({
            key,
            ctx,
            value: x.value,
            variant: x.variant,
            reason: x.reason,
            errorCode: x.errorCode,
          });
        }
      }
      const [mx, my] = [metadataOf(x, a), metadataOf(y, b)];
      if (JSON.stringify(Object.entries(mx).sort()) !== JSON.stringify(Object.entries(my).sort()))
        expect({ key, ctx, metadata: my }, label).toEqual({ key, ctx, metadata: mx });
      n++;
    }
    // Typed evaluation too (TYPE_MISMATCH paths).
    for (const type of kinds) expect(b.evaluate(key, contexts[0], type).reason, `${label} ${key} ${type}`).toBe(a.evaluate(key, contexts[0], type).reason);
  }
  return n;
}

describe("flagd import → export (in memory)", () => {
  for (const { name, text } of corpus) {
    it(`keeps every outcome of ${name}`, () => {
      const original = parseFlagdJson(text);
      const exported = exportOf(stateOf(original));
      const a = compileFlagSet(original, { now: () => NOW });
      const b = compileFlagSet(exported, { now: () => NOW });
      const boundaries = boundaryContexts(original);
      if (text.includes('"fractional"')) expect(boundaries.length).toBeGreaterThan(0);
      const ctxs = [...contexts, ...boundaries];
      expect(assertSameOutcomes(a, b, ctxs, name)).toBeGreaterThan(0);
      // A second round trip is a fixed point: the export imports to the same export.
      expect(toFlagdJson(exportOf(stateOf(exported)))).toBe(toFlagdJson(exported));
    });
  }
});

// --- Vane rules → flagd → Vane rules -------------------------------------------------------------

const val = (x: PbJson) => fromJson(ValueSchema, x);
const attr = (attribute: string, operator: Operator, values: PbJson[]): Condition =>
  create(ConditionSchema, { kind: { case: "attribute", value: { attribute, operator, values: values.map(val) } } });

/** Random but valid rules over the variants a, b, c and the segments s1, s2. */
function randomRules(seed: number): Rule[] {
  const r = rng(seed);
  const pick = <T>(xs: readonly T[]): T => xs[Math.floor(r() * xs.length)];
  const condition = (): Condition =>
    pick<() => Condition>([
      () => attr("plan", pick([Operator.EQUALS, Operator.NOT_EQUALS]), [pick(["pro", "free", 5])]),
      () => attr("country", pick([Operator.IN, Operator.NOT_IN]), ["de", "fr", "mx"].filter(() => r() < 0.6).concat("jp")),
      () => attr("email", pick([Operator.CONTAINS, Operator.STARTS_WITH, Operator.ENDS_WITH]), [pick(["@acme", "beta.", "example.com"])]),
      () => attr("age", pick([Operator.LESS_THAN, Operator.LESS_THAN_OR_EQUAL, Operator.GREATER_THAN, Operator.GREATER_THAN_OR_EQUAL]), [Math.floor(r() * 80)]),
      () => attr("$flagd.timestamp", pick([Operator.BEFORE, Operator.AFTER]), [pick(["2025-01-01T00:00:00Z", "2026-06-30T12:30:00+02:00"])]),
      () =>
        attr(
          "version",
          pick([
            Operator.SEMVER_EQUAL,
            Operator.SEMVER_NOT_EQUAL,
            Operator.SEMVER_LESS_THAN,
            Operator.SEMVER_LESS_THAN_OR_EQUAL,
            Operator.SEMVER_GREATER_THAN,
            Operator.SEMVER_GREATER_THAN_OR_EQUAL,
            Operator.SEMVER_TILDE,
            Operator.SEMVER_CARET,
          ]),
          [pick(["2.0.0", "2.1.0", "v3.0.0-rc.1"])],
        ),
      () => create(ConditionSchema, { kind: { case: "segment", value: { segmentKey: pick(["s1", "s2.x"]), negate: r() < 0.3 } } }),
      () => create(ConditionSchema, { kind: { case: "jsonLogic", value: val({ "!!": [{ var: "verified" }] }) } }),
    ])();
  const rules: Rule[] = [];
  const n = 1 + Math.floor(r() * 5);
  for (let i = 0; i < n; i++) {
    const conditions = Array.from({ length: Math.floor(r() * 3) }, condition);
    const o = r();
    const outcome =
      o < 0.45
        ? { kind: { case: "variant" as const, value: pick(["a", "b", "c"]) } }
        : o < 0.9
          ? {
              kind: {
                case: "rollout" as const,
                value: {
                  bucketBy: pick(["", "", "email", "group", "targetingKey"]),
                  seed: pick(["", "", "exp-7"]),
                  variants: ["a", "b", "c"].filter(() => r() < 0.8).map((v) => ({ variant: v, weight: Math.floor(r() * 5) + (v === "a" ? 1 : 0) })),
                },
              },
            }
          : { kind: { case: "jsonLogic" as const, value: val({ var: ["group", "c"] }) } };
    if (outcome.kind.case === "rollout" && outcome.kind.value.variants.length === 0) outcome.kind.value.variants.push({ variant: "a", weight: 1 });
    rules.push(create(RuleSchema, { id: `r${i + 1}`, conditions, outcome }));
  }
  return rules;
}

describe("Vane rules → flagd → Vane rules", () => {
  it("keeps outcomes and structure for 60 random rule sets", () => {
    const variants = ["a", "b", "c"].map((k) => create(VariantSchema, { key: k, value: val(k.toUpperCase()) }));
    const segments = [
      { key: "s1", conditions: [attr("plan", Operator.EQUALS, ["team"])], includedKeys: ["user-1"], excludedKeys: ["user-2"] },
      { key: "s2.x", conditions: [], includedKeys: ["user-3", "user-4"], excludedKeys: [] },
    ];
    const flags = Array.from({ length: 60 }, (_, i) => ({
      key: `flag-${i}`,
      type: FlagType.STRING,
      variants,
      clientVisible: false,
      environment: { enabled: i % 7 !== 0, defaultVariant: i % 5 === 0 ? "" : "c", rules: randomRules(1000 + i) },
    }));
    for (const f of flags)
      expect(validateRules(f.environment.rules, { variants: new Set(["a", "b", "c"]), segments: new Set(["s1", "s2.x"]) }), f.key).toEqual([]);
    const state: EnvironmentState = { organizationId: "o", projectId: "p", environmentId: "e", version: 1n, committedAt: new Date(NOW), flags, segments };
    const flagd = exportOf(state);
    const back = stateOf(flagd);
    // Structure: the same rules (ids aside; dates come back as the Unix-seconds comparisons they are).
    const dates = (x: any): any => {
      if (Array.isArray(x)) return x.map(dates);
      if (x === null || typeof x !== "object") return x;
      if (x.operator === "OPERATOR_BEFORE" || x.operator === "OPERATOR_AFTER") {
        return {
          ...x,
          operator: x.operator === "OPERATOR_BEFORE" ? "OPERATOR_LESS_THAN" : "OPERATOR_GREATER_THAN_OR_EQUAL",
          values: x.values.map((d: string) => Date.parse(d) / 1000),
        };
      }
      return Object.fromEntries(Object.entries(x).map(([k, v]) => [k, dates(v)]));
    };
    const strip = (rs: readonly Rule[]) => rs.map((r) => dates(toJson(RuleSchema, create(RuleSchema, { ...r, id: "" }))));
    for (const f of flags) expect(strip(back.flags.find((b) => b.key === f.key)!.environment!.rules), f.key).toEqual(strip(f.environment.rules));
    expect(back.segments.map((s) => s.key).sort()).toEqual(["s1", "s2.x"]);
    // Outcomes: Vane's own snapshot form, the flagd file, and the re-imported model agree.
    const vane = compileFlagSet(toFlagSet(state).def, { now: () => NOW });
    const viaFlagd = compileFlagSet(flagd, { now: () => NOW });
    const reimported = compileFlagSet(toFlagSet(back).def, { now: () => NOW });
    const ctxs = [...contexts, ...boundaryContexts(toFlagSet(state).def, { email: "e@x.io", group: "g" })];
    assertSameOutcomes(vane, viaFlagd, ctxs, "vane → flagd");
    assertSameOutcomes(vane, reimported, ctxs, "vane → flagd → vane");
  });
});

describe("ImportFlagd / ExportFlagd through the service", () => {
  let h: FlagsHarness;
  beforeAll(async () => {
    h = await startFlags();
  });
  afterAll(() => h?.close());

  for (const { name, text } of corpus) {
    it(`imports and exports ${name} without changing an outcome`, async () => {
      const t = await h.seedTenant();
      const flags = h.client(FlagService, t.ownerToken);
      const imported = await flags.importFlagd({ environmentId: t.environmentId, flagdJson: text, mode: ImportMode.MERGE, reason: name });
      const original = parseFlagdJson(text);
      const keys = Array.isArray(original.flags) ? original.flags.map((f) => f.key) : Object.keys(original.flags);
      expect([...imported.createdFlagKeys].sort()).toEqual([...keys].sort());
      const exported = await flags.exportFlagd({ environmentId: t.environmentId });
      expect(exported.skipped).toEqual([]);
      expect(exported.configVersion).toBe(imported.configVersion);
      const a = compileFlagSet(original, { now: () => NOW });
      const b = compileFlagSet(parseFlagdJson(exported.flagdJson), { now: () => NOW });
      assertSameOutcomes(a, b, [...contexts.slice(0, 1000), ...boundaryContexts(original)], name);
      // Re-importing the export creates and disables nothing, and changes no outcome. (Segments
      // whose JSON holds a `$` are inlined for flagd, so they come back as json_logic: a new
      // version, the same behaviour.)
      const again = await flags.importFlagd({ environmentId: t.environmentId, flagdJson: exported.flagdJson, mode: ImportMode.REPLACE });
      expect([...again.createdFlagKeys, ...again.disabledFlagKeys]).toEqual([]);
      if (!exported.flagdJson.includes("$flagd")) expect(again.updatedFlagKeys).toEqual([]);
      const reexported = await flags.exportFlagd({ environmentId: t.environmentId });
      assertSameOutcomes(a, compileFlagSet(parseFlagdJson(reexported.flagdJson), { now: () => NOW }), contexts.slice(0, 500), `${name} again`);
    });
  }

  it("imports $evaluators as segments, reports path errors, and disables absent flags in replace mode", async () => {
    const t = await h.seedTenant();
    const flags = h.client(FlagService, t.ownerToken);
    await flags.importFlagd({ environmentId: t.environmentId, flagdJson: corpus.find((c) => c.name === "corpus/vane-shapes.json")!.text });
    const { segments } = await h.client(SegmentService, t.ownerToken).listSegments({ projectId: t.projectId });
    expect(segments.map((s) => s.key)).toEqual(["beta.testers", "blocked"]);
    expect(segments[0]).toMatchObject({ includedKeys: ["user-1", "user-2"], excludedKeys: ["user-7"] });
    const bad = JSON.stringify({
      flags: { f: { state: "ENABLED", variants: { on: true }, defaultVariant: "on", targeting: { if: [{ bogus: [1] }, "on", null] } } },
    });
    await expect(flags.importFlagd({ environmentId: t.environmentId, flagdJson: bad })).rejects.toThrow(
      /flags\.f\.targeting\.if\[0\]\.bogus: unknown operator/,
    );
    const res = await flags.importFlagd({
      environmentId: t.environmentId,
      flagdJson: JSON.stringify({ flags: { "static-string": { state: "ENABLED", variants: { x: "X", y: "Y" }, defaultVariant: "y" } } }),
      mode: ImportMode.REPLACE,
    });
    expect(res.updatedFlagKeys).toEqual(["static-string"]);
    expect([...res.disabledFlagKeys].sort()).toEqual(["checkout", "guarded-split", "numbers"]);
    const got = await flags.getFlag({ projectId: t.projectId, key: "static-string" });
    expect(got.flag?.variants.map((v) => v.key)).toEqual(["x", "y"]);
  });
});
