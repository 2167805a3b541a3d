/**
 * A process for lib/process's test: starts, registers a stop step that never settles, then fails.
 * `VANE_TEST_HANG_STOP=0` registers one that settles instead.
 */
import { runMain } from "#lib/process/process.ts";

runMain(
  "failing",
  async ({ onStop }) => {
    onStop(() => void process.stdout.write("first step stopped\n"));
    // A step that hangs as a socket would: it keeps the event loop alive.
    onStop(() => (process.env.VANE_TEST_HANG_STOP === "0" ? undefined : new Promise<void>(() => setInterval(() => {}, 1000))));
    throw new Error("the file is missing");
  },
  { failedStopTimeoutMs: 300 },
);
