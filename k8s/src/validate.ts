/**
 * Schema validation of rendered objects, offline:
 * - built-in kinds: kubernetes-models' validators (generated from the Kubernetes OpenAPI
 *   schema: required fields, types, formats), and
 * - every kind, built-in or custom: a TypeScript type check of the object as a literal of
 *   its closed type (kubernetes-models' interfaces, or ./crds.ts), which rejects unknown
 *   and misspelt fields the runtime validators let through.
 * An object whose apiVersion/kind has no known schema is an error, never skipped.
 */
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import ts from "typescript";
import { crdTypes } from "./crds.ts";
import { ref, type K8sObject } from "./render.ts";

const srcDir = dirname(fileURLToPath(import.meta.url));

/** One schema problem in one object. */
export interface SchemaError {
  object: string;
  message: string;
}

/** The kubernetes-models module for an apiVersion: "v1", "apps/v1", "networking.k8s.io/v1". */
function coreModule(apiVersion: string): string {
  return `kubernetes-models/${apiVersion}`;
}

const builtinGroups = new Set([
  "v1", "apps/v1", "batch/v1", "autoscaling/v2", "policy/v1", "networking.k8s.io/v1",
  "rbac.authorization.k8s.io/v1", "scheduling.k8s.io/v1", "storage.k8s.io/v1",
]);

function isBuiltin(obj: K8sObject): boolean {
  return builtinGroups.has(obj.apiVersion);
}

/** Runs kubernetes-models' runtime validator for a built-in object. */
async function validateBuiltin(obj: K8sObject): Promise<string | undefined> {
  let mod: Record<string, unknown>;
  try {
    mod = (await import(coreModule(obj.apiVersion))) as Record<string, unknown>;
  } catch {
    return `no kubernetes-models module for ${obj.apiVersion}`;
  }
  const Model = mod[obj.kind] as (new (data: unknown) => { validate(): void }) | undefined;
  if (typeof Model !== "function") return `unknown kind ${obj.kind} in ${obj.apiVersion}`;
  try {
    new Model(obj).validate();
    return undefined;
  } catch (err) {
    return (err as Error).message;
  }
}

/** The TypeScript type an object must satisfy, or undefined when none is known. */
function typeFor(obj: K8sObject, imports: Map<string, string>): string | undefined {
  if (isBuiltin(obj)) {
    const spec = coreModule(obj.apiVersion);
    let alias = imports.get(spec);
    if (!alias) {
      alias = `M${imports.size}`;
      imports.set(spec, alias);
    }
    return `${alias}.I${obj.kind}`;
  }
  const name = crdTypes[`${obj.apiVersion}/${obj.kind}`];
  return name ? `C.${name}` : undefined;
}

/** Type-checks every object as a literal of its closed type; returns errors per object. */
export function typeCheck(objects: K8sObject[]): SchemaError[] {
  const errors: SchemaError[] = [];
  const imports = new Map<string, string>();
  const body: string[] = [];
  const starts: { line: number; object: string }[] = [];
  let line = 0;
  objects.forEach((obj, i) => {
    const type = typeFor(obj, imports);
    if (!type) {
      errors.push({ object: ref(obj), message: `no schema known for ${obj.apiVersion} ${obj.kind}` });
      return;
    }
    const text = `export const o${i}: ${type} = ${JSON.stringify(obj, null, 1)};`;
    starts.push({ line, object: ref(obj) });
    body.push(text);
    line += text.split("\n").length;
  });
  const header = [
    `import type * as C from "./crds.ts";`,
    ...[...imports].map(([spec, alias]) => `import type * as ${alias} from ${JSON.stringify(spec)};`),
  ];
  const fileName = join(srcDir, "__rendered_objects__.ts");
  const source = [...header, ...body].join("\n");
  const options: ts.CompilerOptions = {
    target: ts.ScriptTarget.ES2023,
    module: ts.ModuleKind.NodeNext,
    moduleResolution: ts.ModuleResolutionKind.NodeNext,
    strict: true,
    noEmit: true,
    skipLibCheck: true,
    allowImportingTsExtensions: true,
    types: [],
  };
  const host = ts.createCompilerHost(options);
  const readFile = host.readFile.bind(host);
  const fileExists = host.fileExists.bind(host);
  const getSourceFile = host.getSourceFile.bind(host);
  host.readFile = (f) => (f === fileName ? source : readFile(f));
  host.fileExists = (f) => f === fileName || fileExists(f);
  host.getSourceFile = (f, lang, onError, create) =>
    f === fileName ? ts.createSourceFile(f, source, lang) : getSourceFile(f, lang, onError, create);
  const program = ts.createProgram([fileName], options, host);
  const diagnostics = [...program.getSyntacticDiagnostics(), ...program.getSemanticDiagnostics()];
  for (const d of diagnostics) {
    const message = ts.flattenDiagnosticMessageText(d.messageText, "\n");
    if (!d.file || d.file.fileName !== fileName || d.start === undefined) {
      errors.push({ object: "(schema check)", message });
      continue;
    }
    const at = d.file.getLineAndCharacterOfPosition(d.start).line - header.length;
    const owner = [...starts].reverse().find((s) => s.line <= at);
    const fieldLine = source.split("\n")[at + header.length]?.trim() ?? "";
    errors.push({ object: owner?.object ?? "(unknown)", message: `${message} (at ${fieldLine.slice(0, 80)})` });
  }
  return errors;
}

/** Validates objects against their schemas; an empty result means all are valid. */
export async function validateObjects(objects: K8sObject[]): Promise<SchemaError[]> {
  const errors: SchemaError[] = [];
  for (const obj of objects) {
    if (!isBuiltin(obj)) continue;
    const message = await validateBuiltin(obj);
    if (message) errors.push({ object: ref(obj), message });
  }
  errors.push(...typeCheck(objects));
  return errors;
}
