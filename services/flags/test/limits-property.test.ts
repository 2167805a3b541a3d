/**
 * A property over generated flag files: whatever ImportFlagd accepts is published, decoded as the
 * evaluator decodes it, compiled and evaluated; whatever it refuses is refused as
 * INVALID_ARGUMENT. Nesting straddles the limit; values and flag counts vary in size.
 */
import { Code, ConnectError } from "@connectrpc/connect";
import fc from "fast-check";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { FlagService } from "#gen/vane/flags/v1/flag_service_pb.js";
import { compileFlagSet } from "#engine";
import { eventually } from "#test/support/harness.ts";
import { versionFromSnapshot } from "../../evaluator/snapshots/store.ts";
import { type FlagsHarness, startFlags, type Tenant } from "./harness.ts";
import { decodeStoredSnapshot } from "#lib/bus/snapshots.ts";

const attribute = fc.constantFrom("plan", "country", "age", "email", "targetingKey");
const literal = fc.oneof(fc.string({ maxLength: 20 }), fc.integer({ min: -1000, max: 1000 }), fc.boolean());

/** JSON Logic conditions: comparisons, string and list operators, and/or/not, nested. */
const { condition } = fc.letrec<{ condition: unknown }>((tie) => ({
  condition: fc.oneof(
    { depthSize: "small", withCrossShrink: true },
    fc.tuple(fc.constantFrom("==", "!=", "<", ">", "in", "starts_with", "ends_with"), attribute, literal).map(([op, a, v]) => ({ [op]: [{ var: a }, v] })),
    fc.tuple(attribute, fc.array(literal, { maxLength: 4 })).map(([a, vs]) => ({ in: [{ var: a }, vs] })),
    fc.array(tie("condition"), { minLength: 1, maxLength: 3 }).map((cs) => ({ and: cs })),
    fc.array(tie("condition"), { minLength: 1, maxLength: 3 }).map((cs) => ({ or: cs })),
    tie("condition").map((c) => ({ "!": [c] })),
  ),
}));

/** A condition wrapped in `extra` levels of single-element "and"s: straddles the depth limit. */
const deepCondition = fc.tuple(condition, fc.integer({ min: 0, max: 24 })).map(([c, extra]) => {
  let out = c;
  for (let i = 0; i < extra; i++) out = { and: [out] };
  return out;
});

const variantValue = fc.oneof(fc.string({ maxLength: 2000 }), fc.string({ minLength: 5000, maxLength: 30_000 }));

const flagFile = fc
  .dictionary(fc.stringMatching(/^[a-z][a-z0-9-]{0,15}$/), fc.record({ on: variantValue, off: variantValue, when: deepCondition, enabled: fc.boolean() }), {
    minKeys: 1,
    maxKeys: 6,
  })
  .map((flags) => ({
    flags: Object.fromEntries(
      Object.entries(flags).map(([key, f]) => [
        key,
        { state: f.enabled ? "ENABLED" : "DISABLED", variants: { on: f.on, off: f.off }, defaultVariant: "off", targeting: { if: [f.when, "on", "off"] } },
      ]),
    ),
  }));

describe("ImportFlagd: accepted ⇒ publishable ⇒ evaluable (property)", () => {
  let h: FlagsHarness;
  let t: Tenant;
  beforeAll(async () => {
    // A small snapshot ceiling, so generated files land on both sides of it.
    h = await startFlags({ maxSnapshotBytes: 96 << 10 });
    t = await h.seedTenant();
  });
  afterAll(() => h?.close());

  it("holds for generated flag files", async () => {
    const flags = h.client(FlagService, t.ownerToken);
    let accepted = 0;
    let refused = 0;
    await fc.assert(
      fc.asyncProperty(flagFile, fc.dictionary(attribute, literal), async (file, context) => {
        let configVersion: bigint;
        try {
          configVersion = (await flags.importFlagd({ environmentId: t.environmentId, flagdJson: JSON.stringify(file) })).configVersion;
        } catch (err) {
          expect(ConnectError.from(err).code, ConnectError.from(err).rawMessage).toBe(Code.InvalidArgument);
          refused++;
          return;
        }
        accepted++;
        const value = await eventually(
          async () => {
            const entry = await h.flags.snapshots.get(t.environmentId);
            return entry && (await decodeStoredSnapshot(h.flags.snapshots, entry.value)).version >= configVersion ? entry.value : undefined;
          },
          15_000,
          `snapshot version ${configVersion}`,
        );
        const set = compileFlagSet(versionFromSnapshot(await decodeStoredSnapshot(h.flags.snapshots, value)).evaluationDefinition!, { extensions: true });
        for (const key of Object.keys(file.flags)) {
          const r = set.evaluate(key, { ...context, targetingKey: "u1" });
          expect(r.errorCode, `${key}: ${r.errorMessage}`).toBeUndefined();
        }
      }),
      { numRuns: 40, seed: 20261205, endOnFailure: true },
    );
    // The generator reaches both sides of the limits.
    expect(accepted).toBeGreaterThan(5);
    expect(refused).toBeGreaterThan(2);
  }, 120_000);
});
