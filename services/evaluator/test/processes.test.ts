/**
 * VANE_EVALUATOR_PROCESSES: the real entry point as one process per core sharing the ports —
 * every worker serves, a worker that dies is replaced, and SIGTERM stops them all.
 */
import { spawn, type ChildProcess } from "node:child_process";
import { readdirSync, readFileSync } from "node:fs";
import { createServer } from "node:net";
import { fileURLToPath } from "node:url";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { eventually } from "./harness.ts";

const root = fileURLToPath(new URL("../../..", import.meta.url));
let child: ChildProcess;
let mainPort: number;
let flagdPort: number;
let output = "";

function freePort(): Promise<number> {
  return new Promise((resolve) => {
    const s = createServer().listen(0, "127.0.0.1", () => {
      const { port } = s.address() as { port: number };
      s.close(() => resolve(port));
    });
  });
}
/** The evaluator processes whose parent is `pid` (not tsx's esbuild helper). */
function childrenOf(pid: number): number[] {
  return readdirSync("/proc")
    .filter((d) => /^\d+$/.test(d))
    .flatMap((d) => {
      try {
        const parent = Number(readFileSync(`/proc/${d}/stat`, "utf8").split(") ")[1].split(" ")[1]);
        return parent === pid && readFileSync(`/proc/${d}/cmdline`, "utf8").includes("evaluator/main.ts") ? [Number(d)] : [];
      } catch {
        return [];
      }
    });
}
async function resolveBoolean(): Promise<{ value?: boolean }> {
  const res = await fetch(`http://127.0.0.1:${flagdPort}/flagd.evaluation.v1.Service/ResolveBoolean`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({ flagKey: "bool-static", context: {} }),
  });
  expect(res.status).toBe(200);
  return (await res.json()) as { value?: boolean };
}

beforeAll(async () => {
  [mainPort, flagdPort] = [await freePort(), await freePort()];
  child = spawn(process.execPath, ["--import", "tsx", "services/evaluator/main.ts"], {
    cwd: root,
    env: {
      ...process.env,
      VANE_EVALUATOR_PROCESSES: "2",
      VANE_PORT: String(mainPort),
      VANE_HOST: "127.0.0.1",
      VANE_FLAGD_PORT: String(flagdPort),
      VANE_FLAGD_SYNC_PORT: "off",
      VANE_FLAGD_AUTH: "none",
      VANE_FLAGD_FILE: `${root}services/evaluator/test/flags.fixture.json`,
      VANE_JWKS_URL: "http://127.0.0.1:9/jwks",
      VANE_DRAIN_DELAY: "0s",
      VANE_NATS_URL: "",
      NATS_URL: "",
      VANE_LOG_LEVEL: "info",
    },
    stdio: ["ignore", "pipe", "pipe"],
  });
  child.stdout!.on("data", (d) => (output += d));
  child.stderr!.on("data", (d) => (output += d));
  await eventually(() => (output.match(/evaluator serving/g) ?? []).length >= 2, 120_000, "both workers serving");
}, 150_000);
afterAll(() => {
  if (child.exitCode === null) child.kill("SIGKILL");
});

describe("VANE_EVALUATOR_PROCESSES=2", () => {
  it("serves the same ports from two worker processes, replaces one that dies, and stops them all on SIGTERM", { timeout: 180_000 }, async () => {
    const workers = childrenOf(child.pid!);
    expect(workers).toHaveLength(2);
    const answers = await Promise.all(Array.from({ length: 20 }, resolveBoolean));
    expect(answers.every((a) => a.value === false)).toBe(true);
    expect((await fetch(`http://127.0.0.1:${mainPort}/healthz`)).status).toBe(200);

    process.kill(workers[0], "SIGKILL");
    await eventually(
      () => {
        const now = childrenOf(child.pid!);
        return now.length === 2 && !now.includes(workers[0]) && (output.match(/evaluator serving/g) ?? []).length >= 3;
      },
      120_000,
      "a replacement worker serving",
    );
    expect((await resolveBoolean()).value).toBe(false);

    const exited = new Promise<number | null>((resolve) => child.once("exit", (code) => resolve(code)));
    child.kill("SIGTERM");
    expect(await exited).toBe(0);
    expect(childrenOf(child.pid!)).toEqual([]);
  });
});
