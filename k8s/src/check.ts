/**
 * `npm run k8s:check`: renders every overlay with kubectl's kustomize and runs the same
 * checks as k8s/test (schemas, workload policy, call graph, Dockerfile rules), printing
 * every problem. Exits non-zero when there is one.
 */
import { expectedMeshAuthorization, expectedNetworkPaths, meshAuthorization, networkPaths } from "./call-graph.ts";
import { checkDockerfileAt } from "./dockerfile.ts";
import { checkPolicy } from "./policy.ts";
import { k8sPath, overlays, render } from "./render.ts";
import { validateObjects } from "./validate.ts";

const problems: string[] = [];
for (const overlay of overlays) {
  const objects = render(overlay);
  for (const e of await validateObjects(objects)) problems.push(`${overlay}: ${e.object}: schema: ${e.message}`);
  for (const v of checkPolicy(objects)) problems.push(`${overlay}: ${v.object}: ${v.rule}: ${v.detail}`);
  if (!overlay.endsWith("/migrations")) {
    const paths = networkPaths(objects);
    for (const p of paths) if (!expectedNetworkPaths.includes(p)) problems.push(`${overlay}: network path not in the call graph: ${p}`);
    for (const p of expectedNetworkPaths) if (!paths.includes(p)) problems.push(`${overlay}: call-graph path blocked: ${p}`);
    const mesh = meshAuthorization(objects);
    for (const key of new Set([...Object.keys(mesh), ...Object.keys(expectedMeshAuthorization)])) {
      const got = JSON.stringify(mesh[key] ?? []);
      const want = JSON.stringify([...(expectedMeshAuthorization[key] ?? [])].sort());
      if (got !== want) problems.push(`${overlay}: mesh authorization for ${key}: ${got}, want ${want}`);
    }
  }
  console.log(`${overlay}: ${objects.length} objects rendered`);
}
for (const p of checkDockerfileAt(k8sPath("..", "Dockerfile"), k8sPath("..", ".dockerignore"))) {
  problems.push(`Dockerfile:${p.line}: ${p.rule}: ${p.detail}`);
}
for (const p of problems) console.error(p);
console.log(problems.length === 0 ? "k8s: all checks passed" : `k8s: ${problems.length} problem(s)`);
process.exitCode = problems.length === 0 ? 0 : 1;
