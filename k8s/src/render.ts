/**
 * Renders a kustomization exactly as `kubectl apply -k` sees it, with the kustomize built
 * into kubectl (`kubectl kustomize`), and parses the result into plain objects. Without a
 * kubectl on the machine, one is taken out of an npm package (./kubectl.ts).
 */
import { execFileSync } from "node:child_process";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { parseAllDocuments } from "yaml";
import { findKubectl } from "./kubectl.ts";

/** A rendered Kubernetes object: only the type meta is known in general. */
export interface K8sObject {
  apiVersion: string;
  kind: string;
  metadata: { name: string; namespace?: string; labels?: Record<string, string>; annotations?: Record<string, string> };
  [field: string]: unknown;
}

/** The k8s/ folder. */
export const k8sDir = resolve(dirname(fileURLToPath(import.meta.url)), "..");

/** Every kustomization an operator applies, relative to k8s/. */
export const overlays = ["overlays/dev/migrations", "overlays/dev", "overlays/prod/migrations", "overlays/prod"] as const;
export type Overlay = (typeof overlays)[number];

let kubectl: string | undefined;

/** The kubectl binary: $KUBECTL, the PATH's, else one extracted from an npm package (./kubectl.ts). */
export function kubectlBinary(): string {
  return (kubectl ??= findKubectl());
}

/** Runs `kubectl kustomize <dir>` and returns the YAML it prints. */
export function kustomize(dir: string): string {
  try {
    return execFileSync(kubectlBinary(), ["kustomize", resolve(k8sDir, dir)], {
      encoding: "utf8",
      maxBuffer: 64 * 1024 * 1024,
      stdio: ["ignore", "pipe", "pipe"],
    });
  } catch (err) {
    const e = err as NodeJS.ErrnoException & { stderr?: string };
    if (e.code === "ENOENT") throw new Error(`${kubectlBinary()} could not be run (set KUBECTL to a kubectl >= 1.27)`, { cause: err });
    throw new Error(`kubectl kustomize ${dir} failed: ${e.stderr ?? e.message}`, { cause: err });
  }
}

/** Parses a multi-document YAML stream into objects, rejecting anything malformed. */
export function parseObjects(text: string): K8sObject[] {
  const objects: K8sObject[] = [];
  for (const doc of parseAllDocuments(text)) {
    if (doc.errors.length > 0) throw new Error(`invalid YAML: ${doc.errors[0].message}`);
    const value: unknown = doc.toJS();
    if (value === null || value === undefined) continue;
    const obj = value as K8sObject;
    if (typeof obj.apiVersion !== "string" || typeof obj.kind !== "string" || typeof obj.metadata?.name !== "string") {
      throw new Error(`not a Kubernetes object: ${JSON.stringify(value).slice(0, 120)}`);
    }
    objects.push(obj);
  }
  return objects;
}

/** Renders one kustomization (relative to k8s/) into objects. */
export function render(dir: string): K8sObject[] {
  return parseObjects(kustomize(dir));
}

/** `kind/name`, the way kubectl names an object. */
export function ref(obj: K8sObject): string {
  return `${obj.kind}/${obj.metadata.name}`;
}

/** Absolute path of a file under k8s/. */
export function k8sPath(...parts: string[]): string {
  return join(k8sDir, ...parts);
}

/** One broken rule in one object. */
export interface Violation {
  object: string;
  rule: string;
  detail: string;
}
