/**
 * Builds the console into console/dist: a minified, content-hashed entry (JavaScript and CSS) under
 * assets/, chunks split off for what pages import lazily (the results charts), and an index.html
 * that loads the entry with no inline script (the CSP allows none).
 * `npm start` runs it when the build is missing or older than a source file; `npm run console:build`
 * by hand; `npm run console:dev` rebuilds on change.
 */
import { existsSync, mkdirSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import { join, relative } from "node:path";
import { fileURLToPath } from "node:url";
import * as esbuild from "esbuild";

const here = fileURLToPath(new URL(".", import.meta.url));
export const consoleDist = join(here, "dist");
const src = join(here, "src");

const newest = (dir: string): number =>
  Math.max(...readdirSync(dir, { withFileTypes: true }).map((e) => (e.isDirectory() ? newest(join(dir, e.name)) : statSync(join(dir, e.name)).mtimeMs)));

/** Whether the build is missing or older than a source file. */
export function consoleStale(): boolean {
  const index = join(consoleDist, "index.html");
  return !existsSync(index) || statSync(index).mtimeMs < newest(src);
}

/** Builds (or rebuilds) the console; returns the gzip-free byte size of what the first page loads (the entry and what it imports statically). */
export async function buildConsole(options: { dev?: boolean } = {}): Promise<{ files: string[]; bytes: number }> {
  rmSync(consoleDist, { recursive: true, force: true });
  mkdirSync(join(consoleDist, "assets"), { recursive: true });
  const result = await esbuild.build({
    entryPoints: [join(src, "main.tsx")],
    bundle: true,
    format: "esm",
    splitting: true,
    target: "es2022",
    minify: !options.dev,
    sourcemap: options.dev ? "inline" : "linked",
    jsx: "automatic",
    outdir: join(consoleDist, "assets"),
    entryNames: "[name]-[hash]",
    chunkNames: "chunk-[hash]",
    metafile: true,
    define: { "process.env.NODE_ENV": options.dev ? '"development"' : '"production"' },
    logLevel: "silent",
  });
  const outputs = result.metafile.outputs;
  const files = Object.keys(outputs).map((f) => relative(consoleDist, f));
  // Lazily imported modules are entry points too; only main.tsx's outputs go into the page.
  const entry = Object.keys(outputs).filter(
    (f) => outputs[f].entryPoint?.endsWith("main.tsx") || (f.endsWith(".css") && relative(consoleDist, f).startsWith("assets/main-")),
  );
  const firstPage = new Set(entry.flatMap((f) => [f, ...outputs[f].imports.filter((i) => i.kind === "import-statement").map((i) => i.path)]));
  // The chunks the entry imports statically are preloaded with it rather than found one after another.
  const preloads = [...firstPage].filter((f) => !entry.includes(f));
  const tags = [
    ...entry
      .map((f) => relative(consoleDist, f))
      .map((f) => (f.endsWith(".css") ? `<link rel="stylesheet" href="/${f}" />` : `<script type="module" src="/${f}"></script>`)),
    ...preloads.map((f) => `<link rel="modulepreload" href="/${relative(consoleDist, f)}" />`),
  ].join("\n    ");
  writeFileSync(join(consoleDist, "index.html"), readFileSync(join(src, "index.html"), "utf8").replace("<!--assets-->", tags));
  const bytes = [...firstPage].reduce((a, f) => a + statSync(f).size, 0);
  return { files, bytes };
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  const dev = process.argv.includes("--watch");
  const { files, bytes } = await buildConsole({ dev });
  console.log(`console built: ${files.filter((f) => !f.endsWith(".map")).join(", ")} (${(bytes / 1024).toFixed(0)} KiB before compression)`);
  if (dev) {
    console.log("watching console/src; reload the page after a change");
    const { watch } = await import("node:fs");
    let timer: NodeJS.Timeout | undefined;
    watch(src, { recursive: true }, () => {
      clearTimeout(timer);
      timer = setTimeout(() => void buildConsole({ dev }).then(() => console.log("rebuilt")), 100);
    });
  }
}
