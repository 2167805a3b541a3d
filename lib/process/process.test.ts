/** runMain after a failed start: one line for the person, the steps stopped, and always an exit. */
import { spawnSync } from "node:child_process";
import { fileURLToPath } from "node:url";
import { describe, expect, it } from "vitest";

const script = fileURLToPath(new URL("../../test/support/failing-start.ts", import.meta.url));
const run = (hang: boolean) =>
  spawnSync(process.execPath, ["--import", "tsx", script], {
    env: { ...process.env, VANE_TEST_HANG_STOP: hang ? "1" : "0" },
    encoding: "utf8",
    timeout: 60_000,
  });

describe("runMain after a failed start", () => {
  it("stops what had started, in reverse order, and exits 1", () => {
    const res = run(false);
    expect(res.status).toBe(1);
    expect(res.stderr).toContain("failing: failed to start: the file is missing");
    expect(res.stdout).toBe("first step stopped\n");
  });

  it("exits 1 with a message when a stop step never settles", () => {
    const res = run(true);
    expect(res.signal).toBeNull(); // not killed by the timeout above
    expect(res.status).toBe(1);
    expect(res.stderr).toContain("failing: stopping after the failed start took over 0.3 s; exiting without finishing it");
    expect(res.stdout).toBe("");
  });
});
