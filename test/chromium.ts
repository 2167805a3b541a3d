/**
 * Where the browser tests find Chromium: VANE_CHROMIUM, else the system's Chromium or Chrome
 * (Debian's `chromium` package). `npm test` installs Debian's package when none is found (see
 * scripts/test.ts); this module only looks.
 */
import { existsSync } from "node:fs";

const CANDIDATES = ["/usr/bin/chromium", "/usr/bin/chromium-browser", "/usr/bin/google-chrome", "/usr/bin/google-chrome-stable"];

export const CHROMIUM_HINT = "install Debian's Chromium (`sudo apt-get install chromium`) or set VANE_CHROMIUM to a Chromium or Chrome binary";

/** The Chromium binary to drive, or undefined when there is none. */
export function findChromium(): string | undefined {
  const configured = process.env.VANE_CHROMIUM;
  if (configured) return configured;
  return CANDIDATES.find((p) => existsSync(p));
}

/**
 * Flags for headless Chromium in a sandboxed CI machine: no sandbox (we may run as root), and no
 * background networking, which a closed network answers with refused connections at start-up.
 */
export const CHROMIUM_ARGS = [
  "--no-sandbox",
  "--disable-gpu",
  "--disable-quic",
  "--no-first-run",
  "--disable-background-networking",
  "--disable-component-update",
  "--disable-sync",
];
