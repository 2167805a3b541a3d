/**
 * CI's contract gate: buf lint, `buf format` drift, a stale gen/, and breaking changes
 * against the previous commit (or VANE_BREAKING_AGAINST, any git ref; a shallow clone is deepened
 * to find it, and a base that cannot be found fails). Exits non-zero on any.
 */
import { execFileSync, spawnSync } from "node:child_process";
import { cpSync, existsSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { BreakingBaseError, findBreakingBase } from "./breaking-base.ts";
import { writeProtoDeps } from "./proto-deps.ts";

const root = fileURLToPath(new URL("..", import.meta.url));
const failures: string[] = [];

function step(name: string, cmd: string, args: string[], cwd = root): boolean {
  const r = spawnSync(cmd, args, { cwd, stdio: "inherit" });
  if (r.status !== 0) failures.push(name);
  return r.status === 0;
}
const buf = (name: string, args: string[], cwd = root) => step(name, join(root, "node_modules/.bin/buf"), args, cwd);

writeProtoDeps(root);
buf("buf lint", ["lint"]);
buf("buf format (run `npm run gen` to fix)", ["format", "--diff", "--exit-code", "proto"]);

// Stale gen/: generate into a scratch copy and compare with what is committed.
const scratch = mkdtempSync(join(tmpdir(), "vane-gen-"));
try {
  for (const f of ["buf.yaml", "buf.gen.yaml", "proto", "proto-deps"]) cpSync(join(root, f), join(scratch, f), { recursive: true });
  const env = { ...process.env, PATH: `${join(root, "node_modules/.bin")}:${process.env.PATH}` };
  const gen = spawnSync(join(root, "node_modules/.bin/buf"), ["generate", "--exclude-path", "proto-deps/buf"], { cwd: scratch, stdio: "inherit", env });
  if (gen.status !== 0) failures.push("buf generate");
  else if (!step("gen/ is stale (run `npm run gen` and commit gen/)", "diff", ["-r", "-u", join(root, "gen"), join(scratch, "gen")])) {
    /* diff printed the drift */
  }
} finally {
  rmSync(scratch, { recursive: true, force: true });
}

// Breaking changes: check out the previous tree, prepare it the same way, compare.
const against = process.env.VANE_BREAKING_AGAINST ?? "HEAD~1";
const prev = mkdtempSync(join(tmpdir(), "vane-prev-"));
try {
  const base = findBreakingBase(root, against);
  if (base.kind === "root") {
    console.log("buf breaking: HEAD is the repository's first commit; nothing to compare against");
  } else if (spawnSync("git", ["cat-file", "-e", `${base.sha}:buf.yaml`], { cwd: root }).status !== 0) {
    console.log(`buf breaking: ${against} has no contract yet; nothing to compare against`);
  } else {
    const tar = execFileSync("git", ["archive", base.sha, "buf.yaml", "proto"], { cwd: root, maxBuffer: 1 << 28 });
    execFileSync("tar", ["-x", "-C", prev], { input: tar });
    writeProtoDeps(prev);
    // The current tree's module layout decides; the previous one needs only its files.
    if (!existsSync(join(prev, "proto"))) throw new Error("previous tree has no proto/");
    buf(`buf breaking against ${against}`, ["breaking", "--against", prev]);
  }
} catch (err) {
  if (!(err instanceof BreakingBaseError)) throw err;
  console.error(err.message);
  failures.push(`buf breaking (no ${against} to compare against)`);
} finally {
  rmSync(prev, { recursive: true, force: true });
}

if (failures.length) {
  console.error(`contract check failed: ${failures.join("; ")}`);
  process.exit(1);
}
console.log("contract check passed: lint, format, gen/ fresh, no breaking change");
