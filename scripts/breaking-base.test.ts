import { execFileSync } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { BreakingBaseError, findBreakingBase } from "./breaking-base.ts";

const dirs: string[] = [];
afterAll(() => dirs.forEach((d) => rmSync(d, { recursive: true, force: true })));

const env = {
  ...process.env,
  GIT_AUTHOR_NAME: "t",
  GIT_AUTHOR_EMAIL: "t@example.test",
  GIT_COMMITTER_NAME: "t",
  GIT_COMMITTER_EMAIL: "t@example.test",
  GIT_CONFIG_NOSYSTEM: "1",
};
const git = (cwd: string, ...args: string[]) => execFileSync("git", args, { cwd, env, encoding: "utf8" }).trim();

/** A repository with `commits` commits; returns its path and the commits' shas, oldest first. */
function repo(commits: number): { path: string; shas: string[] } {
  const path = mkdtempSync(join(tmpdir(), "vane-breaking-"));
  dirs.push(path);
  git(path, "init", "--quiet", "--initial-branch=main");
  const shas: string[] = [];
  for (let i = 0; i < commits; i++) {
    writeFileSync(join(path, "file.txt"), `version ${i}\n`);
    git(path, "add", "file.txt");
    git(path, "commit", "--quiet", "-m", `commit ${i}`);
    shas.push(git(path, "rev-parse", "HEAD"));
  }
  return { path, shas };
}

/** `git clone --depth 1` of `source` (file:// so that the clone really is shallow). */
function shallowClone(source: string): string {
  const path = mkdtempSync(join(tmpdir(), "vane-breaking-clone-"));
  dirs.push(path);
  git(path, "clone", "--quiet", "--depth", "1", `file://${source}`, ".");
  return path;
}

describe("findBreakingBase", () => {
  it("finds HEAD~1 in a full clone without fetching", () => {
    const { path, shas } = repo(3);
    const logs: string[] = [];
    expect(findBreakingBase(path, "HEAD~1", (l) => logs.push(l))).toEqual({ kind: "commit", sha: shas[1] });
    expect(logs).toEqual([]);
  });

  it("deepens a shallow clone to find HEAD~1", () => {
    const { path: source, shas } = repo(3);
    const clone = shallowClone(source);
    expect(git(clone, "rev-parse", "--is-shallow-repository")).toBe("true");
    const logs: string[] = [];
    expect(findBreakingBase(clone, "HEAD~1", (l) => logs.push(l))).toEqual({ kind: "commit", sha: shas[1] });
    expect(logs.join("\n")).toMatch(/deepen=1/);
  });

  it("fails when a shallow clone cannot be deepened", () => {
    const { path: source } = repo(2);
    const clone = shallowClone(source);
    rmSync(source, { recursive: true, force: true });
    expect(() => findBreakingBase(clone, "HEAD~1", () => {})).toThrow(BreakingBaseError);
  });

  it("fails when a shallow clone has no remote", () => {
    const { path: source } = repo(2);
    const clone = shallowClone(source);
    git(clone, "remote", "remove", "origin");
    expect(() => findBreakingBase(clone, "HEAD~1", () => {})).toThrow(/no remote/);
  });

  it("passes a repository whose HEAD is its single root commit", () => {
    const { path } = repo(1);
    expect(findBreakingBase(path, "HEAD~1", () => {})).toEqual({ kind: "root" });
  });

  it("passes a shallow clone of a single-commit repository once it knows the history is complete", () => {
    const { path: source } = repo(1);
    expect(findBreakingBase(shallowClone(source), "HEAD~1", () => {})).toEqual({ kind: "root" });
  });

  it("fails on a ref that does not exist", () => {
    const { path } = repo(2);
    expect(() => findBreakingBase(path, "no-such-branch", () => {})).toThrow(BreakingBaseError);
  });
});
