/**
 * Schema validation of rendered objects, offline:
 * - built-in kinds: kubernetes-models' validators (generated from the Kubernetes OpenAPI
 *   schema: required fields, types, formats);
 * - custom kinds with generated models on npm (Gateway API through
 *   @kubernetes-models/gateway-api, prometheus-operator through
 *   @kubernetes-models/prometheus-operator): the same, from the CRDs' OpenAPI schemas;
 * - every kind: a TypeScript type check of the object as a literal of its closed type (the
 *   models' interfaces, or the hand-written shapes in ./crds.ts for the CRDs npm has no
 *   models of), which rejects unknown and misspelt fields the runtime validators let through.
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

/**
 * Custom resources with generated models on npm, by apiVersion: the module and the kinds it
 * has. Gateway API's GRPCRoute v1 is newer than the models that run on Node 20
 * (@kubernetes-models/gateway-api 0.5.x; 2.x needs Node 22), so it stays in ./crds.ts.
 */
const crdModels: Record<string, { module: string; kinds: string[] }> = {
  "gateway.networking.k8s.io/v1": { module: "@kubernetes-models/gateway-api/gateway.networking.k8s.io/v1", kinds: ["Gateway", "GatewayClass", "HTTPRoute"] },
  "monitoring.coreos.com/v1": {
    module: "@kubernetes-models/prometheus-operator/monitoring.coreos.com/v1",
    kinds: ["PodMonitor", "PrometheusRule", "ServiceMonitor", "Probe"],
  },
};

/** The generated-model module for an object, or undefined when only ./crds.ts knows it. */
function modelModule(obj: K8sObject): string | undefined {
  if (isBuiltin(obj)) return coreModule(obj.apiVersion);
  const crd = crdModels[obj.apiVersion];
  return crd?.kinds.includes(obj.kind) ? crd.module : undefined;
}

const builtinGroups = new Set([
  "v1",
  "apps/v1",
  "batch/v1",
  "autoscaling/v2",
  "policy/v1",
  "networking.k8s.io/v1",
  "rbac.authorization.k8s.io/v1",
  "scheduling.k8s.io/v1",
  "storage.k8s.io/v1",
]);

function isBuiltin(obj: K8sObject): boolean {
  return builtinGroups.has(obj.apiVersion);
}

/** Runs the generated model's runtime validator for an object that has one. */
async function validateModel(obj: K8sObject, module: string): Promise<string | undefined> {
  let mod: Record<string, unknown>;
  try {
    mod = (await import(module)) as Record<string, unknown>;
  } catch {
    return `cannot load ${module} for ${obj.apiVersion}`;
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
  const spec = modelModule(obj);
  if (spec) {
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
  const header = [`import type * as C from "./crds.ts";`, ...[...imports].map(([spec, alias]) => `import type * as ${alias} from ${JSON.stringify(spec)};`)];
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
  host.getSourceFile = (f, lang, onError, create) => (f === fileName ? ts.createSourceFile(f, source, lang) : getSourceFile(f, lang, onError, create));
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
    const module = modelModule(obj);
    if (!module) continue;
    const message = await validateModel(obj, module);
    if (message) errors.push({ object: ref(obj), message });
  }
  errors.push(...typeCheck(objects));
  return errors;
}
