import { chmod, mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  findNatsServer,
  freePort,
  isPostgresReachable,
  probeNats,
  redactUrl,
  startLocalInfra,
} from "#lib/local-infra.ts";
import pg from "pg";
import { testDatabaseUrl, testNatsUrl } from "#lib/test-support.ts";

let dir: string;

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), "vane-infra-"));
  // As root the embedded server runs as the postgres user, which must reach the data dir.
  await chmod(dir, 0o755);
});

afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

describe("probes", () => {
  it("tells a reachable Postgres from an unreachable one", async () => {
    expect(await isPostgresReachable(testDatabaseUrl)).toBe(true);
    expect(await isPostgresReachable(`postgres://postgres@127.0.0.1:${await freePort()}/postgres`)).toBe(false);
  });

  it("tells a NATS with JetStream from an unreachable one", async () => {
    expect(await probeNats(testNatsUrl)).toBe("jetstream");
    expect(await probeNats(`nats://127.0.0.1:${await freePort()}`)).toBe("unreachable");
  });

  it("redacts passwords", () => {
    expect(redactUrl("postgres://u:secret@h:1/db")).toBe("postgres://u:***@h:1/db");
  });
});

describe("startLocalInfra", () => {
  it("uses configured URLs as given and starts nothing", async () => {
    const lines: string[] = [];
    const infra = await startLocalInfra({
      root: dir,
      databaseUrl: "postgres://a:b@db:5432/x",
      natsUrl: "nats://bus:4222",
      print: (l) => lines.push(l),
    });
    expect(infra).toMatchObject({ databaseUrl: "postgres://a:b@db:5432/x", natsUrl: "nats://bus:4222" });
    expect(lines.join("\n")).not.toContain("b@");
    await infra.stop();
  });

  it("uses the local servers when they are reachable", async () => {
    const lines: string[] = [];
    const infra = await startLocalInfra({ root: dir, print: (l) => lines.push(l) });
    expect(infra.databaseUrl).toBe("postgres://postgres@127.0.0.1:5432/postgres");
    expect(infra.natsUrl).toBe("nats://127.0.0.1:4222");
    expect(lines).toHaveLength(2);
    await infra.stop();
  });
});

describe("starting our own servers", async () => {
  const natsServerPath = await findNatsServer();

  it.skipIf(!natsServerPath)("starts embedded Postgres and nats-server when nothing is reachable, keeping data across restarts", async () => {
    const options = {
      root: dir,
      localDatabaseUrl: `postgres://postgres@127.0.0.1:${await freePort()}/postgres`,
      localNatsUrl: `nats://127.0.0.1:${await freePort()}`,
      print: () => undefined,
    };
    const first = await startLocalInfra(options);
    try {
      expect(await probeNats(first.natsUrl)).toBe("jetstream");
      const client = new pg.Client({ connectionString: first.databaseUrl });
      await client.connect();
      await client.query("create table kept (id int)");
      await client.end();
    } finally {
      await first.stop();
    }
    expect(await isPostgresReachable(first.databaseUrl, 500)).toBe(false);
    expect(await probeNats(first.natsUrl)).toBe("unreachable");

    const second = await startLocalInfra(options);
    try {
      const client = new pg.Client({ connectionString: second.databaseUrl });
      await client.connect();
      const { rows } = await client.query("select count(*)::int as n from kept");
      await client.end();
      expect(rows[0].n).toBe(0);
    } finally {
      await second.stop();
    }
  }, 120_000);
});
