/**
 * The explaining walker agrees with the compiled evaluator on every answer (value, variant,
 * reason, error code and message, experiment), over every flag of the engine's testdata and the
 * flags service's import corpus, for generated contexts — and its trace says why.
 */
import { readdirSync, readFileSync } from "node:fs";
import { describe, expect, it } from "vitest";
import { compileFlagSet } from "./flag-set.ts";
import { explainFlag, type FlagExplanation, type TraceNode } from "./explain.ts";
import type { FlagSetDefinition, Resolution } from "./types.ts";

const NOW = Date.UTC(2026, 0, 15, 12, 0, 0);
const now = () => NOW;

function flagSets(): { name: string; def: FlagSetDefinition }[] {
  const dirs = [
    new URL("./testdata/", import.meta.url),
    new URL("./testdata/flagd-file/", import.meta.url),
    new URL("../services/flags/test/corpus/", import.meta.url),
  ];
  return dirs.flatMap((dir) =>
    readdirSync(dir)
      .filter((f) => f.endsWith(".json"))
      .map((f) => ({ name: f, def: JSON.parse(readFileSync(new URL(f, dir), "utf8")) as FlagSetDefinition })),
  );
}

/** A deterministic PRNG (mulberry32), so a failure reproduces. */
function rng(seed: number): () => number {
  return () => {
    seed = (seed + 0x6d2b79f5) | 0;
    let t = Math.imul(seed ^ (seed >>> 15), 1 | seed);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** Contexts over the attributes the testdata reads, with missing, mistyped and odd values. */
function contexts(count: number): Record<string, unknown>[] {
  const r = rng(7);
  const pick = <T>(xs: readonly T[]): T => xs[Math.floor(r() * xs.length)];
  const out: Record<string, unknown>[] = [{}, { targetingKey: "" }, { targetingKey: "user-1" }];
  const attrs: Record<string, () => unknown> = {
    targetingKey: () => pick([`user-${Math.floor(r() * 1e5)}`, "", "üser-ñ", "🚀", 0, 42]),
    email: () => pick(["ann@example.com", "beta.bob@acme.io", "carl@acme.com", "x@EXAMPLE.com", 7, null]),
    version: () => pick(["1.2.3", "v2.1.0", "2.10.1", "3.0.0-rc.1", "bad", "2", 2, null]),
    age: () => pick([Math.floor(r() * 90), "30", "", null, true]),
    country: () => pick(["de", "fr", "us", "ca", "jp"]),
    plan: () => pick(["pro", "free", "team"]),
    tier: () => pick(["gold", "silver"]),
    region: () => pick(["eu", "us"]),
    n: () => pick([Math.floor(r() * 700) - 100, "12", null, 4.5]),
    size: () => pick([1, 50, 500, "big"]),
    score: () => Math.floor(r() * 30),
    roles: () => ["admin", "editor", "viewer"].filter(() => r() < 0.4),
    scores: () => Array.from({ length: Math.floor(r() * 4) }, () => Math.floor(r() * 60)),
    cart: () => ({ total: Math.floor(r() * 200) }),
    locale: () => pick(["en-US", "fr-FR", "de"]),
    verified: () => r() < 0.5,
    trial: () => pick([true, false, 0, 1, "", "yes"]),
    rollout: () => Math.floor(r() * 101),
    platform: () => pick(["ios", "android", "web"]),
  };
  while (out.length < count) {
    const ctx: Record<string, unknown> = {};
    for (const [k, f] of Object.entries(attrs)) if (r() < 0.7) ctx[k] = f();
    out.push(ctx);
  }
  return out;
}

const answer = (r: Resolution | FlagExplanation) => ({
  reason: r.reason,
  variant: r.variant,
  value: r.value,
  errorCode: r.errorCode,
  errorMessage: r.errorMessage,
  experimentId: r.experimentId,
});

function keysOf(def: FlagSetDefinition): string[] {
  return Array.isArray(def.flags) ? def.flags.map((f) => f.key!) : Object.keys(def.flags);
}

function nodes(n: TraceNode | undefined): TraceNode[] {
  return n ? [n, ...n.children.flatMap(nodes)] : [];
}

describe("explainFlag", () => {
  const ctxs = contexts(600);
  for (const { name, def } of flagSets()) {
    it(`agrees with the compiled evaluator on ${name}`, () => {
      for (const extensions of [false, true]) {
        const compiled = compileFlagSet(def, { now, extensions });
        let compared = 0;
        for (const key of keysOf(def)) {
          for (const ctx of ctxs) {
            const ex = explainFlag(def, key, ctx, { now, extensions });
            expect(answer(ex), `${name} ${key} ${JSON.stringify(ctx)}`).toEqual(answer(compiled.evaluate(key, ctx)));
            // A fractional that chose an entry says where the unit fell, and that entry is the answer.
            for (const f of nodes(ex.trace).filter((x) => x.op === "fractional" && x.bucket)) {
              expect(f.bucket!.variant).toEqual(f.result);
              expect(f.bucket!.bucket).toBeLessThan(f.bucket!.totalWeight);
            }
            compared++;
          }
        }
        expect(compared).toBe(keysOf(def).length * ctxs.length);
      }
    });
  }

  it("agrees on Vane's extensions: regex_match and experiment assignments", () => {
    const def: FlagSetDefinition = {
      flags: {
        checkout: {
          state: "ENABLED",
          variants: { control: "a", treatment: "b", staff: "s" },
          defaultVariant: "control",
          targeting: {
            if: [
              { regex_match: [{ var: "email" }, "@acme\\.com$", "i"] },
              "staff",
              { "!": { in: [{ var: "targetingKey" }, [null, "", 0, false]] } },
              { experiment: ["exp-1", { fractional: [{ cat: ["exp-1", { var: "targetingKey" }] }, ["control", 50], ["treatment", 50]] }] },
              null,
            ],
          },
        },
      },
    };
    const compiled = compileFlagSet(def, { now, extensions: true });
    for (const ctx of [...ctxs, { email: "ANN@ACME.com", targetingKey: "u1" }]) {
      expect(answer(explainFlag(def, "checkout", ctx, { now, extensions: true }))).toEqual(answer(compiled.evaluate("checkout", ctx)));
    }
    const ex = explainFlag(def, "checkout", { targetingKey: "user-9" }, { now, extensions: true });
    expect(ex.experimentId).toBe("exp-1");
    const split = nodes(ex.trace).find((n) => n.op === "fractional")!;
    expect(split.bucket).toMatchObject({ bucketingValue: "exp-1user-9", totalWeight: 100 });
    expect(split.bucket!.variant).toBe(ex.variant);
  });

  it("records the branch taken, the operands evaluated and the values read", () => {
    const def: FlagSetDefinition = {
      $evaluators: { "segment:beta": { in: [{ var: "targetingKey" }, ["u1", "u2"]] } },
      flags: {
        f: {
          state: "ENABLED",
          variants: { on: true, off: false },
          defaultVariant: "off",
          targeting: {
            if: [{ and: [{ "===": [{ var: "plan" }, "pro"] }, { ends_with: [{ var: "email" }, "@acme.com"] }] }, "on", { $ref: "segment:beta" }, "on", null],
          },
        },
      },
    };
    const ex = explainFlag(def, "f", { plan: "free", email: "a@acme.com", targetingKey: "u2" });
    expect(ex).toMatchObject({ reason: "TARGETING_MATCH", variant: "on" });
    const root = ex.trace!;
    expect(root).toMatchObject({ op: "if", branch: 3, path: "flags.f.targeting" });
    const [first, second, branch] = root.children;
    // The `and` stopped at its first operand: the plan is not "pro".
    expect(first).toMatchObject({ op: "and", index: 0, truthy: false });
    expect(first.children).toHaveLength(1);
    expect(first.children[0]).toMatchObject({ op: "===", result: false, variables: { plan: "free" }, expression: { "===": [{ var: "plan" }, "pro"] } });
    expect(second).toMatchObject({ op: "$ref", ref: "segment:beta", index: 2, truthy: true });
    expect(second.children[0]).toMatchObject({ path: "$evaluators.segment:beta", op: "in", variables: { targetingKey: "u2" } });
    expect(branch).toMatchObject({ op: "value", index: 3, result: "on" });
    // Nothing matches: the else branch (null), so the default.
    expect(explainFlag(def, "f", { plan: "free" })).toMatchObject({ reason: "DEFAULT", variant: "off", trace: { branch: 4, result: null } });
    const noElse: FlagSetDefinition = {
      flags: { g: { state: "ENABLED", variants: { on: true }, defaultVariant: null, targeting: { if: [{ var: "x" }, "on"] } } },
    };
    expect(explainFlag(noElse, "g", {})).toMatchObject({ reason: "DEFAULT", trace: { branch: -1 } });
  });

  it("marks the operation that failed the evaluation", () => {
    const def: FlagSetDefinition = {
      flags: { f: { state: "ENABLED", variants: { on: true }, defaultVariant: "on", targeting: { if: [{ ">": [{ var: "age" }, 18] }, "on", null] } } },
    };
    const ex = explainFlag(def, "f", { age: "old" });
    expect(answer(ex)).toEqual(answer(compileFlagSet(def).evaluate("f", { age: "old" })));
    expect(ex.errorCode).toBe("PARSE_ERROR");
    expect(ex.trace!.children[0]).toMatchObject({ op: ">", error: "not a number", variables: { age: "old" } });
  });
});
