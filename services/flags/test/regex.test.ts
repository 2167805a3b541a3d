/**
 * MATCHES through the real service: validated at write time, compiled to Vane's `regex_match` in
 * the snapshot evaluators load, and left out of flagd exports with the reason.
 */
import { create, fromJson, type JsonValue, toJson } from "@bufbuild/protobuf";
import { ValueSchema } from "@bufbuild/protobuf/wkt";
import { type Client, Code } from "@connectrpc/connect";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { FlagService } from "#gen/vane/flags/v1/flag_service_pb.js";
import { FlagType, Operator, type Rule, RuleSchema, VariantSchema } from "#gen/vane/flags/v1/flags_pb.js";
import { SegmentService } from "#gen/vane/flags/v1/segment_service_pb.js";
import { type EnvironmentSnapshot } from "#gen/vane/flags/v1/snapshot_pb.js";
import { compileFlagSet } from "#engine";
import { snapshotToFlagSet } from "../environment-config.ts";
import { failure } from "#test/support/harness.ts";
import { type FlagsHarness, startFlags, type Tenant } from "./harness.ts";
import { decodeStoredSnapshot } from "#lib/bus/snapshots.ts";

const v = (x: JsonValue) => fromJson(ValueSchema, x);
const variants = [create(VariantSchema, { key: "staff", value: v(true) }), create(VariantSchema, { key: "other", value: v(false) })];
const matches = (attribute: string, values: JsonValue[]) => ({
  kind: { case: "attribute" as const, value: { attribute, operator: Operator.MATCHES, values: values.map(v) } },
});
const staffRule = (values: JsonValue[]): Rule =>
  create(RuleSchema, { conditions: [matches("email", values)], outcome: { kind: { case: "variant", value: "staff" } } });

describe("MATCHES (regular expressions)", () => {
  let h: FlagsHarness;
  let t: Tenant;
  let flags: Client<typeof FlagService>;
  beforeAll(async () => {
    h = await startFlags();
    t = await h.seedTenant();
    flags = h.client(FlagService, t.ownerToken);
    for (const key of ["staff-only", "by-segment", "plain", "slow-looking"])
      await flags.createFlag({ projectId: t.projectId, key, name: key, type: FlagType.BOOLEAN, variants });
  });
  afterAll(() => h?.close());

  const snapshotAt = async (version: bigint): Promise<EnvironmentSnapshot> => {
    for (let i = 0; i < 100; i++) {
      const e = await h.flags.snapshots.get(t.environmentId);
      const snap = e ? await decodeStoredSnapshot(h.flags.snapshots, e.value) : undefined;
      if (snap && snap.version >= version) return snap;
      await new Promise((r) => setTimeout(r, 50));
    }
    throw new Error(`snapshot ${version} never arrived`);
  };

  it("refuses bad patterns at write time with the exact path", async () => {
    const write = (values: JsonValue[]) =>
      failure(
        flags.updateFlagEnvironment({
          environmentId: t.environmentId,
          flagKey: "staff-only",
          enabled: true,
          defaultVariant: "other",
          rules: [staffRule(values)],
        }),
      );
    const cases: [JsonValue[], RegExp][] = [
      [["(a)\\1"], /^rules\[0\]\.conditions\[0\]\.attribute\.values\[0\]: backreferences \(\\1\) are not supported \(RE2 syntax/],
      [["^(?!admin@)"], /values\[0\]: lookahead \(\(\?!…\) is not supported \(RE2 syntax/],
      [["(?<=@)acme"], /values\[0\]: lookbehind \(\(\?<=…\) is not supported \(RE2 syntax/],
      [["\\u00e9"], /values\[0\]: \\u escapes are not supported .*write \\x\{00E9\}/],
      [["[unclosed"], /values\[0\]: not a valid regular expression \(RE2 syntax.*missing closing \]/],
      [["\\p{Nope}"], /values\[0\]: not a valid regular expression \(RE2 syntax.*unknown Unicode class/],
      [["a".repeat(257)], /values\[0\]: the pattern has 257 characters, more than 256/],
      [["ok", "x"], /values\[1\]: flags must be distinct letters/],
      [["ok", "ii"], /values\[1\]: flags must be distinct letters/],
      [[42], /values\[0\]: MATCHES needs a pattern string/],
      [["a", "i", "extra"], /values: MATCHES takes a pattern and optional flags, got 3/],
    ];
    for (const [values, want] of cases) {
      const err = await write(values);
      expect(err.code, JSON.stringify(values)).toBe(Code.InvalidArgument);
      expect(err.rawMessage).toMatch(want);
    }
    expect((await flags.getFlag({ projectId: t.projectId, key: "staff-only" })).environments).toEqual([]);
  });

  it("accepts patterns that backtrack catastrophically in JavaScript: RE2 matches them in linear time", async () => {
    const slow = ["(a|a)*$", "(a|aa)+$", "(a+)+$", "(x*)*y", "(.*a){20}"];
    const { configVersion } = await flags.updateFlagEnvironment({
      environmentId: t.environmentId,
      flagKey: "slow-looking",
      enabled: true,
      defaultVariant: "other",
      rules: [create(RuleSchema, { conditions: slow.map((p) => matches("name", [p])), outcome: { kind: { case: "variant", value: "staff" } } })],
    });
    const set = compileFlagSet(snapshotToFlagSet(await snapshotAt(configVersion)), { extensions: true });
    // Short inputs: engine/regex.test.ts evaluates these on long ones (in a child process).
    // Every condition must hold: (x*)*y needs a "y", (a|aa)+$ and (a+)+$ a run of a's at the end.
    const as = "a".repeat(20);
    expect(set.evaluate("slow-looking", { name: `${as}y${as}` })).toMatchObject({ variant: "staff", reason: "TARGETING_MATCH" });
    expect(set.evaluate("slow-looking", { name: `${as}!` })).toMatchObject({ variant: "other", reason: "DEFAULT" });
  });

  it("compiles MATCHES to regex_match in the snapshot, which evaluates it", async () => {
    await h
      .client(SegmentService, t.ownerToken)
      .createSegment({ projectId: t.projectId, key: "testers", name: "Testers", conditions: [matches("email", ["^qa-\\d+@"])] });
    await flags.updateFlagEnvironment({
      environmentId: t.environmentId,
      flagKey: "staff-only",
      enabled: true,
      defaultVariant: "other",
      rules: [staffRule(["^[^@]+@ACME\\.com$", "i"])],
    });
    await flags.updateFlagEnvironment({
      environmentId: t.environmentId,
      flagKey: "by-segment",
      enabled: true,
      defaultVariant: "other",
      rules: [
        create(RuleSchema, {
          conditions: [{ kind: { case: "segment", value: { segmentKey: "testers" } } }],
          outcome: { kind: { case: "variant", value: "staff" } },
        }),
      ],
    });
    const { configVersion } = await flags.updateFlagEnvironment({ environmentId: t.environmentId, flagKey: "plain", enabled: true, defaultVariant: "staff" });
    const snap = await snapshotAt(configVersion);
    const targeting = toJson(ValueSchema, snap.flags.find((f) => f.key === "staff-only")!.targeting!);
    expect(targeting).toEqual({ if: [{ regex_match: [{ var: "email" }, "^[^@]+@ACME\\.com$", "i"] }, "staff", null] });
    expect(toJson(ValueSchema, snap.evaluators["segment:testers"])).toEqual({ regex_match: [{ var: "email" }, "^qa-\\d+@"] });

    const set = compileFlagSet(snapshotToFlagSet(snap), { extensions: true });
    expect(set.evaluate("staff-only", { email: "Ann@acme.com" })).toMatchObject({ variant: "staff", reason: "TARGETING_MATCH" });
    expect(set.evaluate("staff-only", { email: "ann@acme.com.evil.io" })).toMatchObject({ variant: "other", reason: "DEFAULT" });
    expect(set.evaluate("staff-only", { email: 7 })).toMatchObject({ variant: "other", reason: "DEFAULT" });
    expect(set.evaluate("by-segment", { email: "qa-17@x.io" })).toMatchObject({ variant: "staff" });
    expect(set.evaluate("by-segment", { email: "dev@x.io" })).toMatchObject({ variant: "other" });
  });

  it("leaves flags using MATCHES out of flagd exports, saying why", async () => {
    const exported = await flags.exportFlagd({ environmentId: t.environmentId });
    expect(Object.keys(JSON.parse(exported.flagdJson).flags)).toEqual(["plain"]);
    expect(exported.flagdJson).not.toContain("regex_match");
    expect(exported.skipped).toHaveLength(3);
    expect(exported.skipped.find((s) => s.startsWith("by-segment: "))).toMatch(/segment "testers": .*regular expressions \(MATCHES\)/);
    expect(exported.skipped.find((s) => s.startsWith("staff-only: "))).toMatch(
      /rules\[0\]\.conditions\[0\]\.attribute\.operator: regular expressions \(MATCHES\) have no equivalent in flagd/,
    );
  });
});
