/** In-memory parts: snapshot conversion and the store, exposures, the token cache, selectors. */
import { describe, expect, it, vi } from "vitest";
import { fromBinary, toBinary } from "@bufbuild/protobuf";
import { EventEnvelopeSchema } from "#gen/vane/events/v1/events_pb.js";
import { EnvironmentSnapshotSchema } from "#gen/vane/flags/v1/snapshot_pb.js";
import { compileFlagSet, FlagSetError } from "#engine";
import { createTestLogger } from "#test/support/harness.ts";
import { createExposurePublisher, type Exposure, type ExposureBus } from "../exposures.ts";
import { environmentFromSelector } from "../flagd/access.ts";
import { createSnapshotStore, versionFromSnapshot, type EnvironmentChange } from "../snapshots/store.ts";
import { createCachingVerifier } from "../token-cache.ts";
import { createTestTokens, fixture, snapshotOf } from "./harness.ts";

describe("snapshot store", () => {
  it("converts a flags-service snapshot to the same flag set, with visibility and experiments", () => {
    const bytes = toBinary(EnvironmentSnapshotSchema, snapshotOf(fixture, { environmentId: "e1", version: 7, clientVisible: ["split"] }));
    const v = versionFromSnapshot(fromBinary(EnvironmentSnapshotSchema, bytes));
    expect(v).toMatchObject({ environmentId: "e1", organizationId: "org-1", version: 7, source: "kv" });
    expect(v.definition.flags).toEqual(JSON.parse(JSON.stringify(fixture.flags, (k, val) => (k === "defaultVariant" && val === undefined ? null : val))));
    expect(v.definition.$evaluators).toEqual(fixture.$evaluators);
    const store = createSnapshotStore();
    store.apply(v);
    const s = store.get("e1")!;
    expect([...s.clientVisible]).toEqual(["split"]);
    expect([...s.experiments]).toEqual([["experiment", "exp-1"]]);
    expect(JSON.parse(s.flagdJson(true)).flags).toHaveProperty("split");
    expect(Object.keys(JSON.parse(s.flagdJson(true)).flags)).toEqual(["split"]);
  });

  it("swaps versions atomically, ignores stale ones, names changed keys, and keeps serving on a bad version", () => {
    const store = createSnapshotStore();
    const seen: EnvironmentChange[] = [];
    store.subscribe((c) => void seen.push(c));
    const v1 = versionFromSnapshot(snapshotOf(fixture, { environmentId: "e", version: 1 }));
    expect(store.apply(v1)).toBe("applied");
    expect(seen[0].changedKeys).toEqual(Object.keys(fixture.flags));
    const edited = structuredClone(fixture) as any;
    edited.flags.semver.defaultVariant = "new";
    delete edited.flags.numeric;
    expect(store.apply(versionFromSnapshot(snapshotOf(edited, { environmentId: "e", version: 2 })))).toBe("applied");
    expect(seen[1].changedKeys).toEqual(["semver", "numeric"]);
    expect(store.apply(v1)).toBe("stale");
    const broken = structuredClone(fixture) as any;
    broken.flags.semver.defaultVariant = "missing";
    expect(() => store.apply(versionFromSnapshot(snapshotOf(broken, { environmentId: "e", version: 3 })))).toThrow(FlagSetError);
    expect(store.get("e")!.version).toBe(2);
    expect(store.remove("e")).toBe(true);
    expect(seen.at(-1)!.current).toBeUndefined();
  });
});

describe("snapshots as the flags service writes them", () => {
  it("names only the edited flag as changed although the flag set's version moves every commit", () => {
    const store = createSnapshotStore();
    const seen: EnvironmentChange[] = [];
    store.subscribe((c) => void seen.push(c));
    const v1 = structuredClone(fixture) as any;
    v1.metadata = { flagSetId: "e", version: "1" };
    store.apply(versionFromSnapshot(snapshotOf(v1, { environmentId: "e", version: 1 })));
    const v2 = structuredClone(v1);
    v2.metadata.version = "2";
    v2.flags.semver.defaultVariant = "new";
    store.apply(versionFromSnapshot(snapshotOf(v2, { environmentId: "e", version: 2 })));
    expect(seen[1].changedKeys).toEqual(["semver"]);
  });

  it("marks the experiment's own assignment, and nothing else, as the experiment's", () => {
    const store = createSnapshotStore();
    store.apply(versionFromSnapshot(snapshotOf(fixture, { environmentId: "e", version: 1 })));
    const flags = store.get("e")!.flags;
    // Another rule (staff) is not an exposure.
    expect(flags.evaluate("experiment", { targetingKey: "u1", plan: "staff" }).experimentId).toBeUndefined();
    for (let i = 0; i < 50; i++) expect(flags.evaluate("experiment", { targetingKey: `u${i}` }).experimentId).toBe("exp-1");
    // Sync streams (in-process flagd providers) get the flag set without Vane's operators.
    expect(store.get("e")!.flagdJson(false)).not.toContain('"experiment":[');
  });
});

describe("Vane-only operators", () => {
  it("evaluate in Vane, and are left out of the flag set sync streams give flagd providers", () => {
    const def = structuredClone(fixture) as any;
    def.$evaluators = { ...def.$evaluators, staff: { regex_match: [{ var: "email" }, "@acme\\.com$", "i"] }, "uses-staff": { and: [{ $ref: "staff" }, true] } };
    def.flags["regex-direct"] = {
      state: "ENABLED",
      variants: { on: true, off: false },
      defaultVariant: "off",
      targeting: { if: [{ regex_match: [{ var: "email" }, "^a"] }, "on", "off"] },
    };
    def.flags["regex-ref"] = {
      state: "ENABLED",
      variants: { on: true, off: false },
      defaultVariant: "off",
      targeting: { if: [{ $ref: "uses-staff" }, "on", "off"] },
    };
    const store = createSnapshotStore();
    store.apply(versionFromSnapshot(snapshotOf(def, { environmentId: "e", version: 1 })));
    const s = store.get("e")!;
    expect(s.flags.evaluate("regex-direct", { email: "ann@x" }).variant).toBe("on");
    expect(s.flags.evaluate("regex-ref", { email: "Bo@ACME.com" }).variant).toBe("on");
    const synced = JSON.parse(s.flagdJson(false));
    expect(Object.keys(synced.flags)).not.toContain("regex-direct");
    expect(Object.keys(synced.flags)).not.toContain("regex-ref");
    expect(Object.keys(synced.flags)).toContain("split");
    expect(Object.keys(synced.$evaluators)).not.toContain("staff");
    expect(Object.keys(synced.$evaluators)).not.toContain("uses-staff");
    // flagd's own engine (extensions off) accepts what is synced.
    expect(() => compileFlagSet(synced)).not.toThrow();
  });
});

describe("exposure publisher", () => {
  const exposure = (unit: string): Exposure => ({
    organizationId: "o",
    projectId: "p",
    environmentId: "env.1",
    flagKey: "f",
    variant: "b",
    experimentId: "x",
    unitKey: unit,
  });
  const fakeBus = (behaviour: { up: boolean; fail: boolean }) => {
    const published: { subject: string; data: Uint8Array; id: string }[] = [];
    const bus = {
      status: () => (behaviour.up ? "connected" : "reconnecting"),
      jsm: { streams: { info: vi.fn(async () => ({ config: { storage: "file", retention: "limits", subjects: [] } })), update: vi.fn(async () => ({})) } },
      js: {
        publish: vi.fn(async (subject: string, data: Uint8Array, o: { msgID: string }) => {
          if (behaviour.fail) throw new Error("timeout");
          published.push({ subject, data, id: o.msgID });
          return { stream: "S", seq: published.length, duplicate: false };
        }),
      },
    } as unknown as ExposureBus;
    return { bus, published };
  };

  it("never blocks recording, bounds its buffer, counts drops, and retries failures in order", async () => {
    const state = { up: false, fail: false };
    const { bus, published } = fakeBus(state);
    const p = createExposurePublisher({ logger: createTestLogger(), stream: "S", capacity: 3, flushIntervalMs: 1_000_000 });
    p.attach(bus);
    for (const u of ["a", "b", "c", "d", "e"]) p.record(exposure(u));
    p.record(exposure("a")); // repeat: suppressed
    expect(p.stats()).toMatchObject({ buffered: 3, dropped: 2, suppressed: 1, published: 0 });
    await p.flush(); // NATS down: nothing attempted
    expect(published).toHaveLength(0);
    state.up = true;
    state.fail = true;
    await p.flush();
    expect(p.stats()).toMatchObject({ buffered: 3, failed: 3, published: 0 });
    state.fail = false;
    await p.flush();
    expect(p.stats()).toMatchObject({ buffered: 0, published: 3 });
    const events = published.map((m) => fromBinary(EventEnvelopeSchema, m.data));
    expect(events.map((e) => e.payload.case === "exposure" && e.payload.value.unitKey)).toEqual(["a", "b", "c"]);
    expect(events[0]).toMatchObject({ organizationId: "o", projectId: "p", environmentId: "env.1", credentialId: "" });
    expect(events[0].payload.value).toMatchObject({ flagKey: "f", experimentId: "x", variant: "b", unitKey: "a" });
    expect(published[0].id).toBe(events[0].eventId);
    expect(published[0].subject).toBe("vane.events_s.env_1.exposure");
    await p.stop();
  });
});

describe("token cache", () => {
  it("verifies a token once until it expires, and never caches failures", async () => {
    const tokens = await createTestTokens();
    const inner = { verify: vi.fn(tokens.verifier.verify) };
    const v = createCachingVerifier(inner);
    const t = await tokens.sign({ sub: "k", env: "e", kind: "server" });
    expect((await v.verify(t)).environmentId).toBe("e");
    await v.verify(t);
    expect(inner.verify).toHaveBeenCalledTimes(1);
    await expect(v.verify("nope")).rejects.toThrow();
    await expect(v.verify("nope")).rejects.toThrow();
    expect(inner.verify).toHaveBeenCalledTimes(3);
  });
});

describe("flagd selectors", () => {
  it("reads an environment id from the forms operators use", () => {
    expect(environmentFromSelector("env-1")).toBe("env-1");
    expect(environmentFromSelector("environment=env-2")).toBe("env-2");
    expect(environmentFromSelector("source=x, env=env-3")).toBe("env-3");
    expect(environmentFromSelector("flagSetId=env-4")).toBe("env-4");
    expect(environmentFromSelector("source=x")).toBeUndefined();
    expect(environmentFromSelector(" ")).toBeUndefined();
  });
});
