import { readFileSync } from "node:fs";
import { describe, expect, it } from "vitest";
import { checkDockerfile, checkDockerfileAt, parseDockerfile } from "../src/dockerfile.ts";
import { k8sPath, render } from "../src/render.ts";

const dockerfile = k8sPath("..", "Dockerfile");
const dockerignore = k8sPath("..", ".dockerignore");
const text = readFileSync(dockerfile, "utf8");

describe("the Dockerfile", () => {
  it("meets the image rules", () => {
    expect(checkDockerfileAt(dockerfile, dockerignore)).toEqual([]);
  });

  it("ships every entry point the manifests run", () => {
    const copied = parseDockerfile(text)
      .filter((i) => i.keyword === "COPY" && !i.args.includes("--from"))
      .flatMap((i) => i.args.split(/\s+/).slice(0, -1));
    for (const overlay of ["overlays/prod", "overlays/prod/migrations"]) {
      for (const o of render(overlay)) {
        const spec = (o.spec as any)?.template?.spec;
        for (const c of spec?.containers ?? []) {
          const entry: string = c.args[0];
          expect(
            copied.some((dir) => entry.startsWith(dir.replace(/\/?$/, "/"))),
            entry,
          ).toBe(true);
        }
      }
    }
  });

  it("parses continuations and comments", () => {
    const ins = parseDockerfile("# c\nFROM a:1 AS x\nRUN one \\\n  # inside\n  two\n");
    expect(ins.map((i) => [i.keyword, i.args, i.line])).toEqual([
      ["FROM", "a:1 AS x", 2],
      ["RUN", "one two", 3],
    ]);
  });

  it.each([
    ["a single stage", (t: string) => t.replace(/FROM \$\{NODE_IMAGE\} AS deps[\s\S]*?FROM/, "FROM"), "multi-stage"],
    ["a root user", (t: string) => t.replace("USER 10001:10001", "USER root"), "non-root"],
    ["no USER", (t: string) => t.replace("USER 10001:10001", ""), "non-root"],
    ["an unpinned base", (t: string) => t.replace(/NODE_IMAGE=\S+/, "NODE_IMAGE=node:latest"), "pinned-base"],
    ["a full base image", (t: string) => t.replace(/NODE_IMAGE=\S+/, "NODE_IMAGE=node:20.20.2-bookworm"), "slim-base"],
    ["npm install", (t: string) => t.replace("npm ci --omit=dev", "npm install"), "npm-ci"],
    ["dev dependencies", (t: string) => t.replace("--omit=dev ", ""), "npm-ci"],
    ["a shell-form entry point", (t: string) => t.replace(/ENTRYPOINT \[.*\]/, "ENTRYPOINT node --import tsx"), "exec-form"],
    ["COPY of the whole context", (t: string) => t.replace("COPY lib ./lib", "COPY . ."), "explicit-copy"],
    ["a copied folder .dockerignore excludes", (t: string) => t.replace("COPY lib ./lib", "COPY lib ./lib\nCOPY test ./test"), "dockerignore"],
    ["ADD", (t: string) => t.replace("COPY lib ./lib", "ADD lib ./lib"), "copy-not-add"],
  ])("rejects %s", (_name, edit, rule) => {
    const edited = edit(text);
    expect(edited).not.toBe(text);
    expect(checkDockerfile(edited, readFileSync(dockerignore, "utf8")).map((p) => p.rule)).toContain(rule);
  });
});
