import { readFileSync } from "node:fs";
import { beforeAll, describe, expect, it } from "vitest";
import { parse } from "yaml";
import { eventsStream } from "#lib/bus/streams.ts";
import { DEFAULT_DOMAIN_STREAM, DEFAULT_DOMAIN_SUBJECT_PREFIX, DEFAULT_SNAPSHOT_BUCKET } from "../../services/flags/module.ts";
import { k8sPath, render, type K8sObject } from "../src/render.ts";

const rendered = new Map<string, K8sObject[]>();
beforeAll(() => {
  for (const overlay of ["overlays/dev", "overlays/prod"]) rendered.set(overlay, render(overlay));
});
const nack = (overlay: string, kind: string, name: string) =>
  (rendered.get(overlay) ?? []).find(
    (o) => o.apiVersion.startsWith("jetstream.nats.io/") && o.kind === kind && (o.spec as any)[kind === "Stream" ? "name" : "bucket"] === name,
  )?.spec as any;

describe.each(["overlays/dev", "overlays/prod"])("%s: NACK owns the JetStream assets", (overlay) => {
  it("services only verify them (VANE_JETSTREAM_MANAGED=external)", () => {
    const config = (rendered.get(overlay) ?? []).find((o) => o.kind === "ConfigMap" && o.metadata.name.startsWith("vane-config")) as any;
    expect(config.data.VANE_JETSTREAM_MANAGED).toBe("external");
  });

  it("the streams carry the subjects, storage, age and dedupe window the services declare", () => {
    const events = eventsStream();
    const ev = nack(overlay, "Stream", events.name);
    expect(ev.subjects).toEqual(events.subjects);
    expect(ev.storage).toBe(events.storage);
    expect(ev.retention).toBe("limits");
    expect(ev.maxAge).toBe(`${(events.maxAgeMs ?? 0) / 3_600_000}h`);
    expect(ev.duplicateWindow).toBe(`${(events.duplicateWindowMs ?? 0) / 60_000}m`);
    const domain = nack(overlay, "Stream", DEFAULT_DOMAIN_STREAM);
    expect(domain.subjects).toEqual([`${DEFAULT_DOMAIN_SUBJECT_PREFIX}.>`]);
    expect(domain.storage).toBe("file");
    // flags declares 7 days and a 10-minute window (services/flags/module.ts).
    expect(domain.maxAge).toBe("168h");
    expect(domain.duplicateWindow).toBe("10m");
  });

  it("the snapshot bucket keeps the history and value size flags declares", () => {
    const kv = nack(overlay, "KeyValue", DEFAULT_SNAPSHOT_BUCKET);
    expect(kv.history).toBeGreaterThanOrEqual(5);
    expect(kv.maxValueSize).toBe(8 << 20);
    expect(kv.storage).toBe("file");
  });

  it(`replicates every stream and bucket ${overlay.endsWith("prod") ? "3 times" : "once (one server)"}`, () => {
    const assets = (rendered.get(overlay) ?? []).filter((o) => o.apiVersion.startsWith("jetstream.nats.io/"));
    expect(assets.length).toBe(3);
    for (const a of assets) expect((a.spec as any).replicas, a.metadata.name).toBe(overlay.endsWith("prod") ? 3 : 1);
  });
});

/** Kubernetes quantities (Gi, Mi) and NATS sizes (GB, MB: powers of 1024) in bytes. */
function bytes(size: string | number): number {
  if (typeof size === "number") return size;
  const m = /^\s*(?:<<\s*)?(\d+(?:\.\d+)?)\s*(Ki|Mi|Gi|Ti|KB|MB|GB|TB|K|M|G|T)?B?\s*(?:>>)?\s*$/.exec(size);
  if (!m) throw new Error(`not a size: ${size}`);
  const power = { K: 1, M: 2, G: 3, T: 4 }[(m[2] ?? "")[0] as "K" | "M" | "G" | "T"] ?? 0;
  return Number(m[1]) * 1024 ** power;
}

describe("the JetStream storage budget (helm-values.yaml and the NACK objects)", () => {
  const values = parse(readFileSync(k8sPath("infra/nats/helm-values.yaml"), "utf8")) as {
    config: { jetstream: { fileStore: { maxSize?: string; pvc: { size: string } } }; merge: { max_payload: string } };
  };
  const store = values.config.jetstream.fileStore;

  it("reads sizes as Kubernetes and NATS do", () => {
    expect(bytes("100Gi")).toBe(100 * 2 ** 30);
    expect(bytes("<< 9MB >>")).toBe(9 * 2 ** 20);
    expect(bytes(8388608)).toBe(8 * 2 ** 20);
  });

  it("limits the store explicitly, under the volume", () => {
    expect(store.maxSize, "fileStore.maxSize (max_file_store)").toBeDefined();
    expect(bytes(store.maxSize!)).toBeLessThan(bytes(store.pvc.size));
  });

  it.each(["overlays/dev", "overlays/prod"])(
    "%s: caps every stream and bucket, together within 80%% of the store, and protects them from deletion",
    (overlay) => {
      const assets = (rendered.get(overlay) ?? []).filter((o) => o.apiVersion.startsWith("jetstream.nats.io/"));
      for (const a of assets) {
        const spec = a.spec as { maxBytes?: number; preventDelete?: boolean };
        expect(spec.maxBytes, `${a.metadata.name}: maxBytes`).toBeGreaterThan(0);
        expect(spec.preventDelete, `${a.metadata.name}: preventDelete`).toBe(true);
      }
      // Each server holds a full replica of every stream (R3 on three servers, R1 on one).
      const total = assets.reduce((sum, a) => sum + ((a.spec as { maxBytes?: number }).maxBytes ?? Infinity), 0);
      expect(total).toBeLessThanOrEqual(0.8 * bytes(store.maxSize!));
    },
  );

  it("keeps max_payload above the largest value the snapshot bucket may hold", () => {
    const kv = nack("overlays/prod", "KeyValue", DEFAULT_SNAPSHOT_BUCKET);
    expect(bytes(values.config.merge.max_payload)).toBeGreaterThan(kv.maxValueSize);
  });

  it("alerts when a server's JetStream store fills up", () => {
    const rules = readFileSync(k8sPath("components/observability/rules.yaml"), "utf8");
    expect(rules).toMatch(/alert: JetStreamStorageHigh\n\s+expr: '.*gnatsd_varz_jetstream_stats_storage.*gnatsd_varz_jetstream_config_max_storage/);
  });
});
