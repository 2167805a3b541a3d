import { beforeAll, describe, expect, it } from "vitest";
import { eventsStream } from "#lib/bus/streams.ts";
import { DEFAULT_DOMAIN_STREAM, DEFAULT_DOMAIN_SUBJECT_PREFIX, DEFAULT_SNAPSHOT_BUCKET } from "../../services/flags/module.ts";
import { render, type K8sObject } from "../src/render.ts";

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
