/**
 * The security and operability policy every Vane workload must meet, as a function over
 * rendered objects. CI runs it on every overlay; the tests also feed it bad objects to
 * prove each rule can fail.
 */
import type { IContainer, IPodSpec, IPodTemplateSpec } from "kubernetes-models/v1";
import { checkGracePeriods } from "./grace.ts";
import { ref, type K8sObject, type Violation } from "./render.ts";

export type { Violation };

const workloadKinds = new Set(["Deployment", "StatefulSet", "DaemonSet", "Job", "CronJob", "ReplicaSet", "Pod"]);
const longRunning = new Set(["Deployment", "StatefulSet", "DaemonSet", "ReplicaSet"]);

/** The pod template of a workload object, or undefined for other kinds. */
export function podTemplate(obj: K8sObject): IPodTemplateSpec | undefined {
  const spec = obj.spec as Record<string, any> | undefined; // eslint-disable-line @typescript-eslint/no-explicit-any -- any workload kind
  switch (obj.kind) {
    case "Pod":
      return { metadata: obj.metadata, spec: spec as IPodSpec };
    case "CronJob":
      return spec?.jobTemplate?.spec?.template;
    default:
      return workloadKinds.has(obj.kind) ? spec?.template : undefined;
  }
}

/** Checks one workload; returns its violations (none for non-workloads). */
export function checkWorkload(obj: K8sObject): Violation[] {
  const template = podTemplate(obj);
  if (!workloadKinds.has(obj.kind)) return [];
  const out: Violation[] = [];
  const fail = (rule: string, detail: string) => out.push({ object: ref(obj), rule, detail });
  const pod = template?.spec;
  if (!pod) {
    fail("pod-template", "no pod template");
    return out;
  }
  const podSec = pod.securityContext ?? {};
  if (pod.hostNetwork || pod.hostPID || pod.hostIPC) fail("no-host-namespaces", "hostNetwork/hostPID/hostIPC set");
  if (!pod.serviceAccountName || pod.serviceAccountName === "default") {
    fail("own-service-account", "runs as the default ServiceAccount (no mesh identity of its own)");
  }
  if (pod.automountServiceAccountToken !== false) fail("no-api-token", "automountServiceAccountToken is not false");
  if (podSec.seccompProfile?.type !== "RuntimeDefault" && podSec.seccompProfile?.type !== "Localhost") {
    fail("seccomp", "pod seccompProfile is not RuntimeDefault");
  }
  const containers: IContainer[] = [...(pod.initContainers ?? []), ...pod.containers];
  for (const c of containers) {
    const where = `container ${c.name}`;
    const sec = c.securityContext ?? {};
    const nonRoot = sec.runAsNonRoot ?? podSec.runAsNonRoot;
    const uid = sec.runAsUser ?? podSec.runAsUser;
    if (nonRoot !== true) fail("non-root", `${where}: runAsNonRoot is not true`);
    if (uid === undefined || uid === 0) fail("non-root", `${where}: runAsUser is ${uid ?? "unset"}, want a non-zero uid`);
    if (sec.readOnlyRootFilesystem !== true) fail("read-only-root", `${where}: readOnlyRootFilesystem is not true`);
    if (sec.allowPrivilegeEscalation !== false) fail("no-privilege-escalation", `${where}: allowPrivilegeEscalation is not false`);
    if (sec.privileged) fail("not-privileged", `${where}: privileged`);
    if (!(sec.capabilities?.drop ?? []).includes("ALL")) fail("drop-capabilities", `${where}: capabilities.drop lacks ALL`);
    if ((sec.capabilities?.add ?? []).length > 0) fail("drop-capabilities", `${where}: adds ${sec.capabilities?.add?.join(",")}`);
    for (const kind of ["requests", "limits"] as const) {
      for (const res of ["cpu", "memory"]) {
        if (c.resources?.[kind]?.[res] === undefined) fail("resources", `${where}: no ${res} ${kind.slice(0, -1)}`);
      }
    }
    const image = c.image ?? "";
    if (!image || image.endsWith(":latest") || !/[:@]/.test(image.split("/").pop() ?? "")) {
      fail("pinned-image", `${where}: image ${image || "(none)"} has no tag or digest`);
    }
  }
  for (const c of containers) out.push(...checkPostgresTls(obj, pod, c));
  if (longRunning.has(obj.kind)) {
    for (const c of pod.containers) {
      const where = `container ${c.name}`;
      if (!c.readinessProbe) fail("probes", `${where}: no readinessProbe`);
      if (!c.livenessProbe) fail("probes", `${where}: no livenessProbe`);
      if (!c.lifecycle?.preStop) fail("graceful-shutdown", `${where}: no preStop hook to outlast endpoint removal`);
    }
    if ((pod.terminationGracePeriodSeconds ?? 30) < 30) {
      fail("graceful-shutdown", `terminationGracePeriodSeconds ${pod.terminationGracePeriodSeconds} < 30`);
    }
  }
  return out;
}

/** The Secret CloudNativePG keeps its self-signed CA in (`<cluster>-ca`). */
export const postgresCaSecret = "vane-pg-ca";

/**
 * A container that reaches Postgres must verify the server: `sslmode=verify-full` against
 * CloudNativePG's CA, mounted from its Secret. (`sslmode=require` means verify-full against
 * Node's public CAs in pg-connection-string 2.x, which CNPG's self-signed CA fails.)
 */
export function checkPostgresTls(obj: K8sObject, pod: IPodSpec, c: IContainer): Violation[] {
  const raw = c.env?.find((e) => e.name === "VANE_DATABASE_URL")?.value;
  if (raw === undefined) return [];
  const fail = (detail: string): Violation[] => [{ object: ref(obj), rule: "postgres-tls", detail: `container ${c.name}: ${detail}` }];
  const url = new URL(raw.replace(/\$\((\w+)\)/g, "$1"));
  if (url.searchParams.get("sslmode") !== "verify-full") return fail(`sslmode is ${url.searchParams.get("sslmode") ?? "unset"}, want verify-full`);
  const rootCert = url.searchParams.get("sslrootcert");
  if (!rootCert) return fail("no sslrootcert: verify-full would check CloudNativePG's self-signed CA against public CAs");
  const mount = c.volumeMounts?.find((m) => rootCert.startsWith(`${m.mountPath.replace(/\/$/, "")}/`));
  const volume = pod.volumes?.find((v) => v.name === mount?.name);
  if (!mount || volume?.secret?.secretName !== postgresCaSecret) return fail(`sslrootcert ${rootCert} is not mounted from Secret ${postgresCaSecret}`);
  const file = rootCert.slice(mount.mountPath.replace(/\/$/, "").length + 1);
  const items = volume.secret.items;
  if (items && !items.some((i) => i.path === file && i.key === "ca.crt")) return fail(`${file} is not the ca.crt key of ${postgresCaSecret}`);
  return [];
}

/** Vane's own rules for its services: one `app` label, a port named grpc, gRPC probes, Service + ServiceAccount. */
export function checkVaneServices(objects: K8sObject[]): Violation[] {
  const out: Violation[] = [];
  const byRef = new Map(objects.map((o) => [ref(o), o]));
  for (const obj of objects) {
    if (obj.kind !== "Deployment") continue;
    const fail = (rule: string, detail: string) => out.push({ object: ref(obj), rule, detail });
    const name = obj.metadata.name;
    const spec = obj.spec as { selector?: { matchLabels?: Record<string, string> }; template: IPodTemplateSpec };
    const selector = spec.selector?.matchLabels ?? {};
    if (Object.keys(selector).length !== 1 || selector.app !== name) fail("app-label", `selector is not exactly {app: ${name}}`);
    if (spec.template.metadata?.labels?.app !== name) fail("app-label", `pod template lacks app=${name}`);
    const main = spec.template.spec?.containers[0];
    if (!main?.ports?.some((p) => p.name === "grpc")) fail("grpc-port", "no container port named grpc");
    if (!main?.readinessProbe?.grpc && !main?.startupProbe?.grpc) fail("grpc-probes", "no gRPC health probe");
    const service = byRef.get(`Service/${name}`) as { spec?: { selector?: Record<string, string>; ports?: { name?: string }[] } } | undefined;
    if (!service) fail("service", `no Service/${name}`);
    else {
      if (JSON.stringify(service.spec?.selector) !== JSON.stringify({ app: name })) fail("service", `Service/${name} does not select {app: ${name}}`);
      if (!service.spec?.ports?.some((p) => p.name === "grpc")) fail("service", `Service/${name} has no port named grpc`);
    }
    if (!byRef.has(`ServiceAccount/${spec.template.spec?.serviceAccountName}`)) {
      fail("service-account", `ServiceAccount/${spec.template.spec?.serviceAccountName} is not rendered`);
    }
  }
  return out;
}

/** Runs every rule over a rendered overlay. */
export function checkPolicy(objects: K8sObject[]): Violation[] {
  return [...objects.flatMap(checkWorkload), ...checkVaneServices(objects), ...checkGracePeriods(objects)];
}
