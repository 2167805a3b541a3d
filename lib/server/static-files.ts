/**
 * Serves a built single-page app (the console) from a folder: `/` is its `index.html`, never
 * cached, and `/assets/*` are content-hashed files cached for a year. Files are read once at
 * start. Every answer carries the security headers a page needs: a Content Security Policy with no
 * inline script, no framing, no MIME sniffing, no referrer.
 */
import { readdirSync, readFileSync, existsSync } from "node:fs";
import { extname, join } from "node:path";
import type { HttpRoute } from "./server.ts";

const TYPES: Record<string, string> = {
  ".html": "text/html; charset=utf-8",
  ".js": "text/javascript; charset=utf-8",
  ".css": "text/css; charset=utf-8",
  ".svg": "image/svg+xml",
  ".png": "image/png",
  ".map": "application/json",
  ".woff2": "font/woff2",
};

/**
 * Security headers of every page and asset. `connectOrigins` may also be fetched from: the OpenID
 * Connect provider, whose discovery document and token endpoint the console calls itself.
 */
export function securityHeaders(connectOrigins: readonly string[] = []): Readonly<Record<string, string>> {
  return {
    "content-security-policy": `default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src ${["'self'", ...connectOrigins].join(" ")}; font-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'`,
    "x-content-type-options": "nosniff",
    "x-frame-options": "DENY",
    "referrer-policy": "no-referrer",
    "cross-origin-opener-policy": "same-origin",
  };
}

/** Routes for the app built in `dir` (undefined when it has no index.html). */
export function staticAppRoutes(dir: string, connectOrigins: readonly string[] = []): Record<string, HttpRoute> | undefined {
  const headers = securityHeaders(connectOrigins);
  const index = join(dir, "index.html");
  if (!existsSync(index)) return undefined;
  const routes: Record<string, HttpRoute> = {};
  const serve =
    (body: Buffer, type: string, cache: string): HttpRoute =>
    (req, res) => {
      res.writeHead(200, { "content-type": type, "cache-control": cache, "content-length": String(body.length), ...headers });
      if (req.method === "HEAD") res.end();
      else res.end(body);
    };
  const page = serve(readFileSync(index), TYPES[".html"], "no-cache");
  routes["/"] = page;
  routes["/index.html"] = page;
  const assets = join(dir, "assets");
  if (existsSync(assets)) {
    for (const name of readdirSync(assets)) {
      routes[`/assets/${name}`] = serve(
        readFileSync(join(assets, name)),
        TYPES[extname(name)] ?? "application/octet-stream",
        "public, max-age=31536000, immutable",
      );
    }
  }
  return routes;
}
