/**
 * The collector run on its own, as Kubernetes runs it: it reads the same events-stream setting as
 * the evaluator and analytics, so a deployment that renames the stream keeps producers and the
 * consumer on one stream.
 */
import { spawn } from "node:child_process";
import { fileURLToPath } from "node:url";
import { jetstreamManager } from "@nats-io/jetstream";
import type { NatsConnection } from "@nats-io/transport-node";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { connectTestNats, deleteStreams, eventually, testNatsUrl, uniqueName } from "#test/support/harness.ts";

const root = fileURLToPath(new URL("../../..", import.meta.url));

describe("the standalone collector", () => {
  const stream = uniqueName("EVENTS").toUpperCase();
  let nc: NatsConnection;
  beforeAll(async () => {
    nc = await connectTestNats();
  });
  afterAll(async () => {
    await deleteStreams(nc, [stream]);
    await nc.close();
  });

  it("creates and serves the stream VANE_EVENTS_STREAM names", async () => {
    const child = spawn(process.execPath, ["--import", "tsx", "services/collector/main.ts"], {
      cwd: root,
      env: {
        PATH: process.env.PATH,
        VANE_NATS_URL: testNatsUrl,
        // Fetched on the first authenticated call only; none is made here.
        VANE_JWKS_URL: "http://127.0.0.1:9/.well-known/jwks.json",
        VANE_PORT: "0",
        VANE_HOST: "127.0.0.1",
        VANE_EVENTS_STREAM: stream,
        VANE_DRAIN_DELAY: "0s",
        OTEL_SDK_DISABLED: "true",
      },
      stdio: ["ignore", "ignore", "pipe"],
    });
    let stderr = "";
    child.stderr!.on("data", (d: Buffer) => (stderr += d.toString()));
    const exited = new Promise<number | null>((resolve) => child.once("exit", resolve));
    try {
      const jsm = await jetstreamManager(nc);
      const info = await eventually(
        async () => {
          if (child.exitCode !== null) throw new Error(`the collector exited: ${stderr}`);
          return jsm.streams.info(stream).catch(() => undefined);
        },
        20_000,
        `stream ${stream}`,
      );
      expect(info.config.subjects).toEqual([`vane.events_${stream.toLowerCase()}.>`]);
    } finally {
      child.kill("SIGTERM");
      await exited;
    }
  }, 40_000);
});
