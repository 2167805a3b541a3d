/**
 * A small Dockerfile reader and the rules Vane's image must follow. No Docker engine or
 * Dockerfile linter runs on CI's machines, so these rules are the image build's lint.
 */
import { readFileSync } from "node:fs";

/** One instruction: its keyword (upper case), its argument text, and its line. */
export interface Instruction {
  keyword: string;
  args: string;
  line: number;
}

/** Parses Dockerfile text: comments dropped, backslash continuations joined. */
export function parseDockerfile(text: string): Instruction[] {
  const out: Instruction[] = [];
  let pending = "";
  let start = 0;
  text.split("\n").forEach((raw, i) => {
    const line = raw.replace(/\r$/, "");
    if (!pending && /^\s*(#|$)/.test(line)) return;
    if (pending && /^\s*#/.test(line)) return;
    if (!pending) start = i + 1;
    const continued = /\\\s*$/.test(line);
    pending += (pending ? " " : "") + line.replace(/\\\s*$/, "").trim();
    if (continued) return;
    const m = /^(\w+)\s*(.*)$/.exec(pending);
    if (m) out.push({ keyword: m[1].toUpperCase(), args: m[2], line: start });
    pending = "";
  });
  return out;
}

/** A problem with the Dockerfile. */
export interface DockerfileProblem {
  line: number;
  rule: string;
  detail: string;
}

/** Checks the image rules; `dockerignore` is the .dockerignore text, when there is one. */
export function checkDockerfile(text: string, dockerignore?: string): DockerfileProblem[] {
  const ins = parseDockerfile(text);
  const problems: DockerfileProblem[] = [];
  const fail = (line: number, rule: string, detail: string) => problems.push({ line, rule, detail });
  const args = new Map<string, string>();
  for (const i of ins) {
    if (i.keyword === "ARG") {
      const [name, value] = i.args.split("=", 2);
      if (value !== undefined) args.set(name.trim(), value.trim());
    }
  }
  const froms = ins.filter((i) => i.keyword === "FROM");
  if (froms.length < 2) fail(froms[0]?.line ?? 1, "multi-stage", "one stage: dependencies and tools would ship in the image");
  for (const f of froms) {
    const image = f.args.split(/\s+/)[0].replace(/^\$\{?(\w+)\}?$/, (_, n: string) => args.get(n) ?? `$${n}`);
    const isStage = froms.some((g) => new RegExp(`\\bAS\\s+${image}$`, "i").test(g.args));
    if (isStage) continue;
    if (!/[:@]/.test(image) || /:latest$/.test(image) || image.startsWith("$"))
      fail(f.line, "pinned-base", `base image ${image} is not pinned to a version or digest`);
    else if (!/^node:20[.\d]*-(bookworm-)?slim$|@sha256:/.test(image)) fail(f.line, "slim-base", `base image ${image} is not a Node 20 slim image`);
  }
  const lastFrom = froms.at(-1)?.line ?? 0;
  const final = ins.filter((i) => i.line >= lastFrom);
  const users = final.filter((i) => i.keyword === "USER");
  const user = users.at(-1)?.args.trim() ?? "";
  if (!/^[1-9]\d*(:\d+)?$/.test(user))
    fail(users.at(-1)?.line ?? lastFrom, "non-root", `final stage USER is "${user || "root (unset)"}", want a numeric non-root uid`);
  for (const k of ["ENTRYPOINT", "CMD"]) {
    const i = final.filter((x) => x.keyword === k).at(-1);
    if (!i) fail(lastFrom, "exec-form", `no ${k}`);
    else if (!i.args.trim().startsWith("[")) fail(i.line, "exec-form", `${k} in shell form: signals would not reach node`);
  }
  const runs = ins.filter((i) => i.keyword === "RUN");
  if (!runs.some((r) => /\bnpm ci\b/.test(r.args) && /--omit=dev\b/.test(r.args)))
    fail(1, "npm-ci", "no `npm ci --omit=dev`: installs must follow the lockfile, without dev dependencies");
  for (const r of runs) {
    if (/\bnpm (install|i)\b/.test(r.args)) fail(r.line, "npm-ci", "`npm install` ignores the lockfile; use npm ci");
    if (/\bsudo\b|apt-get (dist-)?upgrade/.test(r.args)) fail(r.line, "no-upgrade", "sudo or apt-get upgrade in the build");
  }
  for (const i of ins) {
    if (i.keyword === "ADD") fail(i.line, "copy-not-add", "ADD fetches and unpacks implicitly; use COPY");
    if (i.keyword === "COPY" && !/--from=/.test(i.args)) {
      const parts = i.args.split(/\s+/).filter((p) => !p.startsWith("--"));
      const sources = parts.slice(0, -1);
      if (sources.some((s) => s === "." || s === "./")) fail(i.line, "explicit-copy", "COPY of the whole context ships tests, secrets and local state");
      if (dockerignore !== undefined) {
        const allowed = dockerignore
          .split("\n")
          .filter((l) => l.startsWith("!"))
          .map((l) => l.slice(1).replace(/\/\*\*$/, ""));
        for (const s of sources) {
          if (!allowed.includes(s.replace(/\/$/, ""))) fail(i.line, "dockerignore", `${s} is copied but not admitted by .dockerignore`);
        }
      }
    }
  }
  if (!final.some((i) => i.keyword === "EXPOSE" && /\b8080\b/.test(i.args))) fail(lastFrom, "expose", "port 8080 not exposed");
  return problems;
}

/** Reads and checks a Dockerfile (and its .dockerignore) from disk. */
export function checkDockerfileAt(path: string, dockerignorePath?: string): DockerfileProblem[] {
  const ignore = dockerignorePath ? readFileSync(dockerignorePath, "utf8") : undefined;
  return checkDockerfile(readFileSync(path, "utf8"), ignore);
}
