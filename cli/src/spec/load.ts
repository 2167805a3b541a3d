/**
 * Reads flags-as-code files (YAML or JSON; a file or a directory of them), checks them against
 * the JSON Schema and for references that cannot work (unknown variants, segments, environments,
 * values of the wrong kind), and reports each problem as `file:line: field: message`.
 */
import { readdir, readFile, stat } from "node:fs/promises";
import { join } from "node:path";
import { LineCounter, parseDocument, isMap, isNode, isScalar, isSeq, type Document } from "yaml";
import { Ajv } from "ajv";
import schema from "../../schema/vane-flags.schema.json" with { type: "json" };
import { UserError } from "../errors.ts";
import type { ConditionSpec, ProjectSpec } from "./model.ts";

interface SourceFile {
  path: string;
  doc: Document;
  lines: LineCounter;
  spec: ProjectSpec;
}

export interface LoadedSpec {
  project?: string;
  spec: Required<Pick<ProjectSpec, "flags" | "segments">>;
  /** Where each flag and segment came from, for messages. */
  where(path: (string | number)[], kind: "flags" | "segments"): string;
}

async function listFiles(path: string): Promise<string[]> {
  let info;
  try {
    info = await stat(path);
  } catch {
    throw new UserError(`${path}: no such file or directory`);
  }
  if (!info.isDirectory()) return [path];
  const names = (await readdir(path)).filter((n) => /\.(ya?ml|json)$/.test(n)).sort();
  if (!names.length) throw new UserError(`${path}: no .yaml, .yml or .json files`);
  return names.map((n) => join(path, n));
}

function position(file: SourceFile, path: (string | number)[]): string {
  // The deepest node that exists along the path (a missing field points at its parent); for a
  // map entry, the line of its key rather than of its value.
  for (let n = path.length; n > 0; n--) {
    const parent = file.doc.getIn(path.slice(0, n - 1), true);
    const last = path[n - 1];
    const node = isMap(parent)
      ? parent.items.find((p) => isScalar(p.key) && p.key.value === last)?.key
      : isSeq(parent)
        ? parent.items[last as number]
        : undefined;
    if (isNode(node) && node.range) return `${file.path}:${file.lines.linePos(node.range[0]).line}`;
  }
  return `${file.path}:1`;
}

const fieldName = (path: (string | number)[]) =>
  path
    .map((p) => (typeof p === "number" ? `[${p}]` : `.${p}`))
    .join("")
    .replace(/^\./, "") || "(top)";

async function parseFile(path: string): Promise<SourceFile> {
  const text = await readFile(path, "utf8");
  const lines = new LineCounter();
  const doc = parseDocument(text, { lineCounter: lines, prettyErrors: false });
  if (doc.errors.length) {
    const e = doc.errors[0];
    throw new UserError(`${path}:${lines.linePos(e.pos[0]).line}: ${e.message.split("\n")[0]}`);
  }
  return { path, doc, lines, spec: (doc.toJS() ?? {}) as ProjectSpec };
}

function check(file: SourceFile, validate: ReturnType<Ajv["compile"]>): string[] {
  if (validate(file.spec)) return [];
  // oneOf failures repeat every branch's complaint; the most specific (deepest) ones say most.
  const errors = validate.errors ?? [];
  const deepest = Math.max(...errors.map((e) => e.instancePath.split("/").length));
  const seen = new Set<string>();
  const lines: string[] = [];
  for (const e of errors) {
    if (e.keyword === "oneOf" && errors.some((o) => o !== e && o.instancePath.startsWith(e.instancePath))) continue;
    const path: (string | number)[] = e.instancePath
      .split("/")
      .slice(1)
      .map((p) => (/^\d+$/.test(p) ? Number(p) : p.replace(/~1/g, "/").replace(/~0/g, "~")));
    const extraKey = e.keyword === "additionalProperties" ? (e.params as { additionalProperty: string }).additionalProperty : undefined;
    if (extraKey) path.push(extraKey);
    const message = extraKey ? "unknown field" : e.message;
    const allowed = e.keyword === "enum" ? ` (${(e.params as { allowedValues: unknown[] }).allowedValues.join(", ")})` : "";
    const line = `${position(file, path)}: ${fieldName(path)}: ${message}${allowed}`;
    if (!seen.has(line) && (e.instancePath.split("/").length === deepest || lines.length === 0)) lines.push(line);
    seen.add(line);
  }
  return lines;
}

const KIND_OF: Record<string, (v: unknown) => boolean> = {
  boolean: (v) => typeof v === "boolean",
  string: (v) => typeof v === "string",
  number: (v) => typeof v === "number",
  object: (v) => typeof v === "object" && v !== null && !Array.isArray(v),
};

/** References that the schema cannot check. `environments`/`segments`: keys known on the server. */
function checkReferences(file: SourceFile, knownSegments: Set<string>, environments: string[]): string[] {
  const out: string[] = [];
  const at = (path: (string | number)[], message: string) => out.push(`${position(file, path)}: ${fieldName(path)}: ${message}`);
  const checkConditions = (conditions: ConditionSpec[] | undefined, path: (string | number)[]) =>
    conditions?.forEach((c, i) => {
      if ("segment" in c && !knownSegments.has(c.segment)) at([...path, i, "segment"], `unknown segment "${c.segment}"`);
    });
  for (const [key, flag] of Object.entries(file.spec.flags ?? {})) {
    const variants = Object.keys(flag.variants);
    const unknown = (v: string) => `unknown variant "${v}" (flag ${key} has ${variants.join(", ")})`;
    for (const [v, val] of Object.entries(flag.variants))
      if (!KIND_OF[flag.type](val)) at(["flags", key, "variants", v], `a ${flag.type} flag's variant must be a ${flag.type}, got ${JSON.stringify(val)}`);
    for (const [envKey, env] of Object.entries(flag.environments ?? {})) {
      const base = ["flags", key, "environments", envKey];
      if (!environments.includes(envKey)) at(base, `unknown environment "${envKey}" (the project has ${environments.join(", ")})`);
      if (env.default !== undefined && !variants.includes(env.default)) at([...base, "default"], unknown(env.default));
      env.rules?.forEach((r, i) => {
        if (r.variant !== undefined && !variants.includes(r.variant)) at([...base, "rules", i, "variant"], unknown(r.variant));
        r.rollout?.forEach((slice, j) => {
          const v = Object.keys(slice)[0];
          if (!variants.includes(v)) at([...base, "rules", i, "rollout", j], unknown(v));
        });
        checkConditions(r.when, [...base, "rules", i, "when"]);
      });
    }
  }
  for (const [key, seg] of Object.entries(file.spec.segments ?? {})) checkConditions(seg.when, ["segments", key, "when"]);
  return out;
}

/** Reads `path`; `serverSegments` and `environments` let references to them be checked. */
export async function loadSpec(path: string, context: { serverSegments?: string[]; environments?: string[] } = {}): Promise<LoadedSpec> {
  const files = await Promise.all((await listFiles(path)).map(parseFile));
  const validate = new Ajv({ allErrors: true, strict: false }).compile(schema);
  const problems = files.flatMap((f) => check(f, validate));
  if (problems.length) throw new UserError(problems.join("\n"));

  const spec = { flags: {}, segments: {} } as LoadedSpec["spec"];
  const origin = new Map<string, SourceFile>();
  let project: string | undefined;
  for (const f of files) {
    if (f.spec.project !== undefined) {
      if (project !== undefined && project !== f.spec.project)
        throw new UserError(`${position(f, ["project"])}: project: "${f.spec.project}" differs from another file's "${project}"`);
      project = f.spec.project;
    }
    for (const kind of ["flags", "segments"] as const)
      for (const [key, item] of Object.entries(f.spec[kind] ?? {})) {
        const first = origin.get(`${kind}/${key}`);
        if (first) throw new UserError(`${position(f, [kind, key])}: ${kind}.${key}: also defined at ${position(first, [kind, key])}`);
        origin.set(`${kind}/${key}`, f);
        (spec[kind] as Record<string, unknown>)[key] = item;
      }
  }
  if (context.environments) {
    const segments = new Set([...Object.keys(spec.segments), ...(context.serverSegments ?? [])]);
    const refs = files.flatMap((f) => checkReferences(f, segments, context.environments!));
    if (refs.length) throw new UserError(refs.join("\n"));
  }
  return {
    project,
    spec,
    where: (p, kind) => {
      const f = origin.get(`${kind}/${p[0]}`);
      return f ? position(f, [kind, ...p]) : path;
    },
  };
}
