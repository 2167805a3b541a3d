#!/usr/bin/env node
/* global URL */
// The `vane` command. Plain JavaScript so start-up does not pay for a TypeScript loader: it runs
// the esbuild bundle in cli/dist (code-split, so each command loads only what it uses), rebuilt
// here when a source file is newer than it. Where cli/dist cannot be written (a read-only
// install) it runs the TypeScript sources through tsx instead: slower to start, same program.
import { readFileSync, statSync } from "node:fs";

const root = new URL("../../", import.meta.url);
const manifestUrl = new URL("cli/dist/manifest.json", root);

function currentBuild() {
  try {
    const manifest = JSON.parse(readFileSync(manifestUrl, "utf8"));
    const fresh = manifest.inputs.every((file) => statSync(new URL(file, root)).mtimeMs <= manifest.builtAt);
    return fresh ? new URL(`cli/dist/${manifest.dir}/main.js`, root) : undefined;
  } catch {
    return undefined;
  }
}

let entry = currentBuild();
if (!entry) {
  try {
    const { buildCli } = await import("./build.js");
    entry = await buildCli();
  } catch (err) {
    if (!["EACCES", "EPERM", "EROFS"].includes(err?.code)) throw err;
    const { register } = await import("tsx/esm/api");
    register();
    entry = new URL("cli/src/main.ts", root);
  }
}
await import(entry.href);
