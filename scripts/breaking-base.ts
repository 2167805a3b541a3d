/**
 * Finds the commit `buf breaking` compares against. CI often checks out with `--depth 1`, where
 * HEAD~1 is simply absent: skipping then would let a breaking change through unchecked, so a
 * shallow repository is deepened from its remote first, and a base that still cannot be found is
 * an error. Only a repository whose HEAD really is its single root commit has nothing to compare.
 */
import { spawnSync } from "node:child_process";

/** What to compare against: a commit, or nothing because HEAD is the repository's first commit. */
export type BreakingBase = { kind: "commit"; sha: string } | { kind: "root" };

/** Thrown when the base commit cannot be found; the message says how to fix the checkout. */
export class BreakingBaseError extends Error {}

function git(cwd: string, args: string[]): { ok: boolean; out: string; err: string } {
  const r = spawnSync("git", args, { cwd, encoding: "utf8" });
  return { ok: r.status === 0, out: (r.stdout ?? "").trim(), err: (r.stderr ?? "").trim() };
}

const resolve = (cwd: string, ref: string) => {
  const r = git(cwd, ["rev-parse", "--verify", "--quiet", `${ref}^{commit}`]);
  return r.ok ? r.out : undefined;
};
const isShallow = (cwd: string) => git(cwd, ["rev-parse", "--is-shallow-repository"]).out === "true";

/** The remote to deepen from: `origin` when present, else the only remote there is. */
function fetchRemote(cwd: string): string | undefined {
  const remotes = git(cwd, ["remote"]).out.split("\n").filter(Boolean);
  return remotes.includes("origin") ? "origin" : remotes.length === 1 ? remotes[0] : undefined;
}

/**
 * Resolves `against` (a git ref, `HEAD~1` by default) in the repository at `cwd`, deepening a
 * shallow clone as needed. Throws {@link BreakingBaseError} when it cannot be found.
 */
export function findBreakingBase(cwd: string, against = "HEAD~1", log: (line: string) => void = console.log): BreakingBase {
  let sha = resolve(cwd, against);
  // One more commit is enough for HEAD~1; anything else gets the whole history on the second try.
  for (let attempt = 0; !sha && isShallow(cwd) && attempt < 2; attempt++) {
    const remote = fetchRemote(cwd);
    if (!remote)
      throw new BreakingBaseError(
        `buf breaking: ${against} is missing from this shallow clone and it has no remote to fetch it from; clone with full history (or --depth 2)`,
      );
    const args = attempt === 0 ? ["fetch", "--quiet", "--deepen=1", remote] : ["fetch", "--quiet", "--unshallow", remote];
    log(`buf breaking: ${against} is not in this shallow clone; running git ${args.join(" ")}`);
    const r = git(cwd, args);
    if (!r.ok)
      throw new BreakingBaseError(
        `buf breaking: could not deepen the shallow clone to find ${against} (git ${args.join(" ")}: ${r.err.split("\n")[0] || "failed"}); clone with full history (or --depth 2)`,
      );
    sha = resolve(cwd, against);
  }
  if (sha) return { kind: "commit", sha };
  // A complete history whose HEAD has no parent: the first commit, nothing came before it.
  const parents = git(cwd, ["rev-list", "--parents", "-n", "1", "HEAD"]).out.split(" ").slice(1);
  if (against === "HEAD~1" && !isShallow(cwd) && resolve(cwd, "HEAD") && parents.length === 0) return { kind: "root" };
  throw new BreakingBaseError(
    `buf breaking: cannot find ${against} to compare the contract against; fetch it (git fetch origin) or set VANE_BREAKING_AGAINST to an existing ref`,
  );
}
