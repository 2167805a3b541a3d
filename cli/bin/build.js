/* global process, URL */
// Bundles cli/src with esbuild into cli/dist/<build>/ (ES modules, split per dynamic import;
// packages stay external) and points cli/dist/manifest.json at it. Builds go to fresh
// directories and the manifest is replaced atomically, so `vane` processes started side by
// side never read a half-written build.
import { mkdir, readdir, rename, rm, stat, writeFile } from "node:fs/promises";
import { fileURLToPath } from "node:url";
import { build } from "esbuild";

const root = fileURLToPath(new URL("../../", import.meta.url));
const dist = `${root}cli/dist/`;
const STALE_BUILD_MS = 60 * 60 * 1000;

/** Builds the CLI and returns the URL of its entry module. */
export async function buildCli() {
  const builtAt = Date.now();
  const dir = `build-${builtAt}-${process.pid}`;
  await mkdir(dist, { recursive: true });
  const result = await build({
    entryPoints: [`${root}cli/src/main.ts`],
    outdir: `${dist}${dir}`,
    bundle: true,
    splitting: true,
    format: "esm",
    platform: "node",
    target: "node20",
    packages: "external",
    metafile: true,
    logLevel: "error",
    absWorkingDir: root,
  });
  const inputs = Object.keys(result.metafile.inputs).filter((file) => !file.includes("node_modules/"));
  const tmp = `${dist}manifest.${process.pid}.json`;
  await writeFile(tmp, JSON.stringify({ dir, builtAt, inputs }));
  await rename(tmp, `${dist}manifest.json`);
  await removeOldBuilds(dir);
  return new URL(`file://${dist}${dir}/main.js`);
}

// Older builds may still be running in other processes (chunks load lazily), so only builds
// unused for an hour go.
async function removeOldBuilds(keep) {
  for (const name of await readdir(dist)) {
    if (!name.startsWith("build-") || name === keep) continue;
    const info = await stat(`${dist}${name}`).catch(() => undefined);
    if (info && Date.now() - info.mtimeMs > STALE_BUILD_MS) await rm(`${dist}${name}`, { recursive: true, force: true });
  }
}
