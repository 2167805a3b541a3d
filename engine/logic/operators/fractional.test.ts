import { describe, expect, it } from "vitest";
import { bucketOf, pickBucket, MAX_TOTAL_WEIGHT } from "./fractional.ts";
import { compileJsonLogic } from "../compile.ts";
import { murmur3Utf8 } from "../../murmur3.ts";
import { referenceBucket } from "../../reference-murmur3.ts";
import type { JsonValue } from "../../types.ts";

const exact = (h: number, t: number) => Number((BigInt(h) * BigInt(t)) >> 32n);
const run = (logic: JsonValue, ctx: Record<string, unknown>, flagKey = "flag") => compileJsonLogic(logic, "t", { flagKey }).evaluate(ctx);

describe("bucketOf", () => {
  it("computes (hash × total) >> 32 exactly, even where doubles would round", () => {
    const hashes = [0, 1, 0xffff, 0x10000, 0x7fffffff, 0x80000000, 0xfffffffe, 0xffffffff, 0xdeadbeef, 0x12345678];
    const totals = [1, 2, 3, 100, 1000, 65535, 65536, 999_999, MAX_TOTAL_WEIGHT - 1, MAX_TOTAL_WEIGHT];
    for (const h of hashes) for (const t of totals) expect(bucketOf(h, t)).toBe(exact(h, t));
    // A hash where h × total is one below a multiple of 2^32: a double rounds the product up and
    // floating-point division lands one bucket too high.
    const t = BigInt(MAX_TOTAL_WEIGHT);
    let inv = 1n;
    for (let i = 0; i < 6; i++) inv = (inv * (2n - t * inv)) % 2n ** 32n; // Newton: inverse of t mod 2^32
    const h = Number(((-inv % 2n ** 32n) + 2n ** 32n) % 2n ** 32n);
    expect((BigInt(h) * t + 1n) % 2n ** 32n).toBe(0n);
    expect(bucketOf(h, MAX_TOTAL_WEIGHT)).toBe(exact(h, MAX_TOTAL_WEIGHT));
    expect(Math.floor((h * MAX_TOTAL_WEIGHT) / 2 ** 32)).toBe(exact(h, MAX_TOTAL_WEIGHT) + 1);
  });
});

describe("pickBucket", () => {
  it("picks the first variant whose cumulative weight exceeds the bucket", () => {
    const entries = ["a", 1, "b", 2, "c", 1]; // buckets: a=[0], b=[1,2], c=[3]
    const hashFor = (bucket: number) => Math.ceil((bucket * 2 ** 32) / 4); // smallest hash landing in `bucket` for total 4
    expect(pickBucket(hashFor(0), entries, 4)).toBe("a");
    expect(pickBucket(hashFor(1) - 1, entries, 4)).toBe("a");
    expect(pickBucket(hashFor(1), entries, 4)).toBe("b");
    expect(pickBucket(hashFor(3) - 1, entries, 4)).toBe("b");
    expect(pickBucket(hashFor(3), entries, 4)).toBe("c");
    expect(pickBucket(0xffffffff, entries, 4)).toBe("c");
  });
  it("skips zero weights and yields null for a zero total", () => {
    expect(pickBucket(0, ["a", 0, "b", 5], 5)).toBe("b");
    expect(pickBucket(123, ["a", 0], 0)).toBeNull();
  });
});

describe("fractional operator", () => {
  const rule: JsonValue = {
    fractional: [
      ["red", 25],
      ["blue", 25],
      ["green", 25],
      ["yellow", 25],
    ],
  };
  const buckets: [string, number][] = [
    ["red", 25],
    ["blue", 25],
    ["green", 25],
    ["yellow", 25],
  ];

  it("buckets by flag key + targeting key, UTF-8 hashed (ASCII and non-ASCII)", () => {
    for (const tk of ["user-1", "jon@company.com", "üser", "用户-42", "🚀rocket", "e\u0301"]) {
      expect(run(rule, { targetingKey: tk }, "headerColor")).toBe(referenceBucket(`headerColor${tk}`, buckets));
    }
  });
  it("uses an explicit string bucketing value, which may be computed", () => {
    const byEmail: JsonValue = { fractional: [{ var: "email" }, ["a", 50], ["b", 50]] };
    expect(run(byEmail, { email: "zoë@x.io", targetingKey: "ignored" })).toBe(
      referenceBucket("zoë@x.io", [
        ["a", 50],
        ["b", 50],
      ]),
    );
    const computed: JsonValue = { fractional: [{ cat: [{ var: "$flagd.flagKey" }, { var: "org" }] }, ["a", 50], ["b", 50]] };
    expect(run(computed, { org: "acme" }, "f")).toBe(
      referenceBucket("facme", [
        ["a", 50],
        ["b", 50],
      ]),
    );
  });
  it("falls back to the targeting key when the bucketing value is null (flagd)", () => {
    const byEmail: JsonValue = { fractional: [{ var: "email" }, ["a", 50], ["b", 50]] };
    expect(run(byEmail, { targetingKey: "u-9" }, "f")).toBe(
      referenceBucket("fu-9", [
        ["a", 50],
        ["b", 50],
      ]),
    );
  });
  it("yields null without a targeting key, or with an empty one", () => {
    expect(run(rule, {})).toBeNull();
    expect(run(rule, { targetingKey: "" })).toBeNull();
  });
  it("defaults weights to 1, counts negatives as 0, and yields null for a zero total", () => {
    expect(run({ fractional: [["a"], ["b"]] }, { targetingKey: "k" }, "f")).toBe(
      referenceBucket("fk", [
        ["a", 1],
        ["b", 1],
      ]),
    );
    for (const tk of ["1", "2", "3", "4", "5", "6"])
      expect(
        run(
          {
            fractional: [
              ["a", -10],
              ["b", 3],
            ],
          },
          { targetingKey: tk },
        ),
      ).toBe("b");
    expect(
      run(
        {
          fractional: [
            ["a", 0],
            ["b", 0],
          ],
        },
        { targetingKey: "k" },
      ),
    ).toBeNull();
  });
  it("accepts computed weights and variant names", () => {
    const r: JsonValue = {
      fractional: [
        [{ cat: ["v", { var: "n" }] }, { var: "w" }],
        ["other", { "-": [100, { var: "w" }] }],
      ],
    };
    for (const tk of ["a", "b", "c", "d"]) expect(run(r, { targetingKey: tk, n: 1, w: 100 })).toBe("v1");
    for (const tk of ["a", "b", "c", "d"]) expect(run(r, { targetingKey: tk, n: 1, w: 0 })).toBe("other");
    expect(run(r, { targetingKey: "a", n: 1, w: 1.5 })).toBeNull(); // a non-integer weight
    expect(
      run(
        {
          fractional: [
            ["a", { var: "w" }],
            ["b", 1],
          ],
        },
        { targetingKey: "a", w: 2147483647 },
      ),
    ).toBeNull(); // total above MaxInt32
    expect(
      run(
        {
          fractional: [
            ["a", { var: "w" }],
            ["b", 0],
          ],
        },
        { targetingKey: "a", w: 2147483647 },
      ),
    ).toBe("a");
  });
  it("splits close to the weights over many keys", () => {
    const counts: Record<string, number> = {};
    for (let i = 0; i < 20000; i++) {
      const v = run(
        {
          fractional: [
            ["a", 10],
            ["b", 90],
          ],
        },
        { targetingKey: `user-${i}` },
      ) as string;
      counts[v] = (counts[v] ?? 0) + 1;
    }
    expect(counts.a / 20000).toBeGreaterThan(0.09);
    expect(counts.a / 20000).toBeLessThan(0.11);
  });
  it("hashes only once per evaluation with the flag key pre-hashed (same result as the concatenation)", () => {
    expect(murmur3Utf8("flaguser")).toBe(murmur3Utf8("flag" + "user"));
  });
});

describe("fractional with a single bucket", () => {
  it("answers its variant for any bucketing value: every hash lands in it", () => {
    expect(run({ fractional: [["single", 1]] }, { targetingKey: "someone" })).toBe("single");
    expect(run({ fractional: [["single"]] }, { targetingKey: "x" })).toBe("single");
    expect(run({ fractional: ["seed", ["single", 5]] }, {})).toBe("single");
    // Computed buckets too.
    expect(run({ fractional: [[{ var: "v" }, 1]] }, { v: "from-context", targetingKey: "k" })).toBe("from-context");
  });
  it("is null without a bucketing value, whatever the bucket count (flagd's evaluator, flagd-core, the testbed)", () => {
    expect(run({ fractional: [["single", 1]] }, {})).toBeNull();
    expect(run({ fractional: [null, ["one"]] }, {})).toBeNull();
    expect(run({ fractional: [["single"]] }, { targetingKey: "" })).toBeNull();
    expect(run({ fractional: [{ var: "missing" }, ["single", 5]] }, {})).toBeNull();
    expect(run({ fractional: [[{ var: "v" }, 1]] }, { v: "from-context" })).toBeNull();
  });
  it("does not bucket a targeting key that is not a string (a number or a boolean over the raw protocol)", () => {
    for (const targetingKey of [123, true, 0, { id: "x" }]) {
      expect(
        run(
          {
            fractional: [
              ["a", 1],
              ["b", 1],
            ],
          },
          { targetingKey } as never,
        ),
      ).toBeNull();
      expect(run({ fractional: [null, ["a", 1], ["b", 1]] }, { targetingKey } as never)).toBeNull();
      expect(run({ fractional: [["only"]] }, { targetingKey } as never)).toBeNull();
    }
    // A string bucketing value still works whatever the targeting key.
    expect(run({ fractional: ["seed", ["a", 1], ["b", 1]] }, { targetingKey: 123 } as never)).not.toBeNull();
  });
  it("still needs a bucketing value when there is a choice, and a positive weight", () => {
    expect(
      run(
        {
          fractional: [
            ["a", 1],
            ["b", 1],
          ],
        },
        {},
      ),
    ).toBeNull();
    expect(run({ fractional: [["a", 0]] }, { targetingKey: "u" })).toBeNull();
    expect(
      run(
        {
          fractional: [
            ["a", 1],
            ["b", 0],
          ],
        },
        {},
      ),
    ).toBeNull();
  });
});
