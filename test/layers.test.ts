/**
 * The layers of the tree, checked on the import graph: what the image runs reaches only production
 * code and production dependencies, and the kit has no import cycles.
 */
import { execFileSync } from "node:child_process";
import { readFileSync, existsSync } from "node:fs";
import { builtinModules } from "node:module";
import { dirname, join, relative, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { describe, expect, it } from "vitest";

const root = fileURLToPath(new URL("..", import.meta.url));
const pkg = JSON.parse(readFileSync(join(root, "package.json"), "utf8")) as {
  dependencies: Record<string, string>;
  imports: Record<string, string>;
};
const specifier = /(?:^|\n)\s*(?:import|export)\s[^;]*?from\s+"([^"]+)"|import\(\s*"([^"]+)"\s*\)/g;

/** The import specifiers of one file (static and literal dynamic imports; `import type` included). */
function specifiers(file: string): string[] {
  const text = readFileSync(file, "utf8");
  return [...text.matchAll(specifier)].map((m) => m[1] ?? m[2]);
}

/** A specifier resolved to a file of the repository, or the npm package it names. */
function resolveSpecifier(from: string, spec: string): { file: string } | { pkg: string } | null {
  if (spec.startsWith("node:") || builtinModules.includes(spec)) return null;
  if (spec.startsWith("#")) {
    const [alias, target] = Object.entries(pkg.imports).find(([a]) => spec.startsWith(a.replace("*", ""))) ?? [];
    if (!alias || !target) throw new Error(`${from}: no import alias for ${spec}`);
    return { file: join(root, target.replace("*", spec.slice(alias.length - 1))) };
  }
  if (spec.startsWith(".")) return { file: resolve(dirname(from), spec) };
  const parts = spec.split("/");
  return { pkg: spec.startsWith("@") ? parts.slice(0, 2).join("/") : parts[0] };
}

/** Every repository file and package reachable from the entry points. */
function reach(entries: string[]): { files: Set<string>; packages: Map<string, string> } {
  const files = new Set<string>();
  const packages = new Map<string, string>();
  const todo = [...entries];
  while (todo.length > 0) {
    const file = todo.pop()!;
    if (files.has(file)) continue;
    files.add(file);
    if (!file.endsWith(".ts")) continue;
    for (const spec of specifiers(file)) {
      const target = resolveSpecifier(file, spec);
      if (!target) continue;
      if ("pkg" in target) packages.set(target.pkg, relative(root, file));
      else {
        // gen/ is imported as .js and stored as .ts.
        const ts = target.file.replace(/\.js$/, ".ts");
        todo.push(existsSync(target.file) ? target.file : ts);
      }
    }
  }
  return { files, packages };
}

/** The entry points the image runs: each service's main and the migration script. */
const imageEntries = ["analytics", "collector", "evaluator", "flags", "identity"]
  .map((s) => join(root, "services", s, "main.ts"))
  .concat(join(root, "scripts", "migrate.ts"));

describe("layers", () => {
  it("the image's entry points reach no development or test code", () => {
    const { files } = reach(imageEntries);
    const offenders = [...files]
      .map((f) => relative(root, f))
      .filter((f) => f.startsWith("dev/") || f.startsWith("test/") || f.includes("/test/") || f.endsWith(".test.ts") || !existsSync(join(root, f)));
    expect(offenders).toEqual([]);
  });

  it("the image's entry points need only production dependencies", () => {
    const { packages } = reach(imageEntries);
    const missing = [...packages].filter(([name]) => !(name in pkg.dependencies)).map(([name, from]) => `${name} (from ${from})`);
    expect(missing).toEqual([]);
  });

  it("the checker sees a development import (it can fail)", () => {
    const { files } = reach([join(root, "scripts", "start.ts")]);
    expect([...files].some((f) => relative(root, f).startsWith("dev/"))).toBe(true);
  });

  it("no service imports another service; tests may start another service, never reach into its tests", () => {
    const files = execFileSync("git", ["ls-files", "services"], { cwd: root, encoding: "utf8" })
      .split("\n")
      .filter((f) => f.endsWith(".ts"));
    const crossings: string[] = [];
    for (const f of files) {
      const own = f.split("/")[1];
      for (const spec of specifiers(join(root, f))) {
        const target = resolveSpecifier(join(root, f), spec);
        if (!target || !("file" in target)) continue;
        const to = relative(root, target.file).split("/");
        const isTest = f.includes("/test/") || f.endsWith(".test.ts");
        if (to[0] === "services" && to[1] !== own && (!isTest || to[2] === "test")) crossings.push(`${f} → ${to.join("/")}`);
      }
    }
    expect(crossings).toEqual([]);
  });

  it("the engine is a package of its own: it imports only itself and its declared dependencies", () => {
    const enginePkg = JSON.parse(readFileSync(join(root, "engine", "package.json"), "utf8")) as { dependencies: Record<string, string> };
    const entries = Object.values({ index: "index.ts", testing: "testing.ts" }).map((f) => join(root, "engine", f));
    const { files, packages } = reach(entries);
    expect([...files].map((f) => relative(root, f)).filter((f) => !f.startsWith("engine/"))).toEqual([]);
    expect([...packages.keys()].filter((name) => !(name in enginePkg.dependencies))).toEqual([]);
  });

  it("everyone else reaches the engine through its entry points only", () => {
    const files = execFileSync("git", ["ls-files", "*.ts"], { cwd: root, encoding: "utf8" })
      .split("\n")
      .filter((f) => f && !f.startsWith("engine/") && !f.startsWith("gen/"));
    const reachIns = files.flatMap((f) =>
      specifiers(join(root, f))
        .filter((spec) => !spec.startsWith("#engine") && /(^|\/)engine\//.test(spec))
        .map((spec) => `${f}: ${spec}`),
    );
    expect(reachIns).toEqual([]);
  });

  it("the runtime kit has no import cycles", () => {
    const { files } = reach(imageEntries);
    const kit = [...files].filter((f) => relative(root, f).startsWith("lib/"));
    const edges = new Map(
      kit.map((f) => [
        f,
        specifiers(f)
          .map((s) => resolveSpecifier(f, s))
          .flatMap((t) => (t && "file" in t ? [t.file] : []))
          .filter((t) => kit.includes(t)),
      ]),
    );
    const cycles: string[] = [];
    const state = new Map<string, "open" | "done">();
    const visit = (f: string, path: string[]) => {
      if (state.get(f) === "done") return;
      if (state.get(f) === "open") {
        cycles.push([...path.slice(path.indexOf(f)), f].map((p) => relative(root, p)).join(" → "));
        return;
      }
      state.set(f, "open");
      for (const t of edges.get(f) ?? []) visit(t, [...path, f]);
      state.set(f, "done");
    };
    for (const f of kit) visit(f, []);
    expect(cycles).toEqual([]);
  });
});
