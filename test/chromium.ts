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

/**
 * Bundles `entry` (a browser script) with esbuild and serves it as a one-script page on a free
 * loopback port: another origin than the server under test, so every call from it is cross-origin.
 */
export async function servePage(entry: string, title: string): Promise<{ url: string; close(): Promise<void> }> {
  const { build } = await import("esbuild");
  const { createServer } = await import("node:http");
  const bundle = await build({
    entryPoints: [entry],
    bundle: true,
    write: false,
    format: "iife",
    platform: "browser",
    target: "chrome120",
    logLevel: "silent",
  });
  const js = bundle.outputFiles[0].text;
  const site = createServer((req, res) => {
    if (req.url === "/app.js") res.writeHead(200, { "content-type": "text/javascript" }).end(js);
    else res.writeHead(200, { "content-type": "text/html" }).end(`<!doctype html><title>${title}</title><script src="/app.js"></script>`);
  });
  await new Promise<void>((r) => site.listen(0, "127.0.0.1", r));
  const { port } = site.address() as { port: number };
  return { url: `http://127.0.0.1:${port}`, close: () => new Promise<void>((r) => site.close(() => r())) };
}
