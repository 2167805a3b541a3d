/**
 * Stopping `npm start` the way a supervisor does: SIGTERM to the npm process (not to node)
 * stops the whole system gracefully — readiness turns 503 first while the server still answers,
 * then every port closes and no process it started is left — and so does npm being killed
 * outright, which cannot pass any signal on.
 */
import { readdirSync, readFileSync } from "node:fs";
import * as net from "node:net";
import { afterEach, describe, expect, it } from "vitest";
import { eventually } from "#test/support/harness.ts";
import { startVane, type VaneProcess } from "./vane-process.ts";

/** Every process below `pid` now (Linux: from /proc). */
function descendants(pid: number): number[] {
  const parents = new Map<number, number[]>();
  for (const entry of readdirSync("/proc")) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const stat = readFileSync(`/proc/${entry}/stat`, "utf8");
      const ppid = Number(stat.slice(stat.lastIndexOf(")") + 2).split(" ")[1]);
      parents.set(ppid, [...(parents.get(ppid) ?? []), Number(entry)]);
    } catch {
      // gone meanwhile
    }
  }
  const out: number[] = [];
  const walk = (p: number) => {
    for (const child of parents.get(p) ?? []) {
      out.push(child);
      walk(child);
    }
  };
  walk(pid);
  return out;
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    // A zombie has exited; it only waits for its parent to read its status.
    return !/^\d+ \(.*\) Z/.test(readFileSync(`/proc/${pid}/stat`, "utf8"));
  } catch {
    return false;
  }
}

function accepts(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = net.connect(port, "127.0.0.1");
    socket.once("connect", () => (socket.destroy(), resolve(true)));
    socket.once("error", () => resolve(false));
  });
}

describe.skipIf(process.platform !== "linux")("npm start, stopped through npm", () => {
  let vane: VaneProcess | undefined;
  afterEach(async () => {
    await vane?.cleanup();
    vane = undefined;
  });

  async function started() {
    vane = startVane([], {}, { npm: true });
    const s = await vane.started(60_000);
    const ports = [Number(new URL(s.baseUrl).port), s.flagdPort!, s.syncPort!];
    const tree = descendants(vane.pid);
    // npm, the node process it runs (the start script execs it), and whatever node runs.
    expect(tree.length).toBeGreaterThan(0);
    for (const port of ports) expect(await accepts(port)).toBe(true);
    return { ...s, ports, tree };
  }

  it("SIGTERM to npm: NOT_SERVING first while still answering, then every port closed and nothing left running", async () => {
    const { baseUrl, ports, tree } = await started();
    const readiness: string[] = [];
    let polling = true;
    const poll = (async () => {
      while (polling) {
        const res = await fetch(`${baseUrl}/readyz`).catch(() => undefined);
        const seen = res ? String(res.status) : "refused";
        if (readiness.at(-1) !== seen) readiness.push(seen);
        if (!res) return;
        await new Promise((r) => setTimeout(r, 20));
      }
    })();
    await eventually(() => readiness.includes("200"), 10_000, "ready");
    process.kill(vane!.pid, "SIGTERM");
    await poll;
    polling = false;
    expect(readiness).toEqual(["200", "503", "refused"]);
    await eventually(async () => !alive(vane!.pid) && tree.every((pid) => !alive(pid)), 30_000, "npm and every process under it to exit");
    for (const port of ports) expect(await accepts(port)).toBe(false);
    expect(vane!.output()).toContain("Vane stopped.");
  }, 120_000);

  it("npm killed outright (SIGKILL): the node process notices and stops by itself", async () => {
    const { ports, tree } = await started();
    process.kill(vane!.pid, "SIGKILL");
    await eventually(() => tree.every((pid) => !alive(pid)), 30_000, "every process npm started to exit");
    for (const port of ports) expect(await accepts(port)).toBe(false);
    expect(vane!.output()).toContain("Vane stopped.");
  }, 120_000);
});
