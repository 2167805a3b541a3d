import { beforeAll, describe, expect, it } from "vitest";
import { checkGracePeriods } from "../src/grace.ts";
import { checkPolicy, checkWorkload } from "../src/policy.ts";
import { overlays, render, type K8sObject } from "../src/render.ts";
import { typeCheck, validateObjects } from "../src/validate.ts";

const rendered = new Map<string, K8sObject[]>();
beforeAll(() => {
  for (const overlay of overlays) rendered.set(overlay, render(overlay));
});

describe.each(overlays)("%s", (overlay) => {
  it("meets the workload policy", () => {
    const objs = rendered.get(overlay) ?? [];
    expect(objs.some((o) => o.kind === "Deployment" || o.kind === "Job")).toBe(true);
    expect(checkPolicy(objs)).toEqual([]);
  });
});

describe("the policy rejects", () => {
  let good: any;
  let goodJob: any;
  beforeAll(() => {
    const prod = rendered.get("overlays/prod") ?? [];
    good = prod.find((o) => o.kind === "Deployment" && o.metadata.name === "flags");
    goodJob = (rendered.get("overlays/prod/migrations") ?? []).find((o) => o.kind === "Job");
  });
  const rulesOf = (obj: K8sObject) => checkWorkload(obj).map((v) => v.rule);
  const mutate = (fn: (d: any) => void, from: () => any = () => good): K8sObject => {
    const d = structuredClone(from());
    fn(d);
    return d;
  };
  const container = (d: any) => d.spec.template.spec.containers[0];

  it("nothing in the objects it is fed as good", () => {
    expect(checkWorkload(good)).toEqual([]);
    expect(checkWorkload(goodJob)).toEqual([]);
  });

  it.each([
    [
      "root user",
      (d: any) => {
        container(d).securityContext.runAsUser = 0;
        d.spec.template.spec.securityContext.runAsUser = 0;
      },
      "non-root",
    ],
    [
      "runAsNonRoot unset",
      (d: any) => {
        delete container(d).securityContext.runAsNonRoot;
        delete d.spec.template.spec.securityContext.runAsNonRoot;
      },
      "non-root",
    ],
    [
      "a writable root filesystem",
      (d: any) => {
        container(d).securityContext.readOnlyRootFilesystem = false;
      },
      "read-only-root",
    ],
    [
      "privilege escalation",
      (d: any) => {
        delete container(d).securityContext.allowPrivilegeEscalation;
      },
      "no-privilege-escalation",
    ],
    [
      "privileged mode",
      (d: any) => {
        container(d).securityContext.privileged = true;
      },
      "not-privileged",
    ],
    [
      "kept capabilities",
      (d: any) => {
        container(d).securityContext.capabilities = { drop: ["NET_RAW"] };
      },
      "drop-capabilities",
    ],
    [
      "added capabilities",
      (d: any) => {
        container(d).securityContext.capabilities.add = ["NET_ADMIN"];
      },
      "drop-capabilities",
    ],
    [
      "no limits",
      (d: any) => {
        delete container(d).resources.limits;
      },
      "resources",
    ],
    [
      "no memory request",
      (d: any) => {
        delete container(d).resources.requests.memory;
      },
      "resources",
    ],
    [
      "no readiness probe",
      (d: any) => {
        delete container(d).readinessProbe;
      },
      "probes",
    ],
    [
      "no liveness probe",
      (d: any) => {
        delete container(d).livenessProbe;
      },
      "probes",
    ],
    [
      "no preStop",
      (d: any) => {
        delete container(d).lifecycle;
      },
      "graceful-shutdown",
    ],
    [
      "a short grace period",
      (d: any) => {
        d.spec.template.spec.terminationGracePeriodSeconds = 5;
      },
      "graceful-shutdown",
    ],
    [
      "a latest image",
      (d: any) => {
        container(d).image = "ghcr.io/vane-dev/vane:latest";
      },
      "pinned-image",
    ],
    [
      "an untagged image",
      (d: any) => {
        container(d).image = "ghcr.io/vane-dev/vane";
      },
      "pinned-image",
    ],
    [
      "host networking",
      (d: any) => {
        d.spec.template.spec.hostNetwork = true;
      },
      "no-host-namespaces",
    ],
    [
      "the default ServiceAccount",
      (d: any) => {
        delete d.spec.template.spec.serviceAccountName;
      },
      "own-service-account",
    ],
    [
      "a mounted API token",
      (d: any) => {
        delete d.spec.template.spec.automountServiceAccountToken;
      },
      "no-api-token",
    ],
    [
      "no seccomp profile",
      (d: any) => {
        delete d.spec.template.spec.securityContext.seccompProfile;
      },
      "seccomp",
    ],
    [
      "a root init container",
      (d: any) => {
        d.spec.template.spec.initContainers = [{ name: "init", image: "busybox:1.36", securityContext: { runAsUser: 0 } }];
      },
      "non-root",
    ],
  ])("a Deployment with %s", (_name, fn, rule) => {
    expect(rulesOf(mutate(fn))).toContain(rule);
  });

  it("a Job running as root, and a bare Pod without limits", () => {
    expect(
      rulesOf(
        mutate(
          (j) => {
            j.spec.template.spec.securityContext.runAsUser = 0;
            container(j).securityContext.runAsUser = 0;
          },
          () => goodJob,
        ),
      ),
    ).toContain("non-root");
    const pod = { apiVersion: "v1", kind: "Pod", metadata: { name: "p" }, spec: { containers: [{ name: "c", image: "x:1" }] } } as K8sObject;
    expect(rulesOf(pod)).toEqual(expect.arrayContaining(["non-root", "read-only-root", "resources", "drop-capabilities"]));
  });

  it("a Vane Deployment without its grpc port, gRPC probe, Service or single app selector", () => {
    const prod = rendered.get("overlays/prod") ?? [];
    const others = prod.filter((o) => !(o.metadata.name === "flags" && ["Deployment", "Service"].includes(o.kind)));
    const rules = (d: K8sObject, withService = true) =>
      checkPolicy([...others, d, ...(withService ? prod.filter((o) => o.kind === "Service" && o.metadata.name === "flags") : [])]).map((v) => v.rule);
    expect(
      rules(
        mutate((d) => {
          container(d).ports[0].name = "http";
        }),
      ),
    ).toContain("grpc-port");
    expect(
      rules(
        mutate((d) => {
          delete container(d).readinessProbe.grpc;
          container(d).readinessProbe.httpGet = { path: "/readyz", port: 8080 };
          delete container(d).startupProbe;
        }),
      ),
    ).toContain("grpc-probes");
    expect(
      rules(
        mutate((d) => {
          d.spec.selector.matchLabels.tier = "x";
          d.spec.template.metadata.labels.tier = "x";
        }),
      ),
    ).toContain("app-label");
    expect(rules(good, false)).toContain("service");
  });

  it("objects with unknown fields, wrong types or unknown kinds (schema check)", () => {
    const bad = [
      mutate((d) => {
        container(d).readinesProbe = {};
      }),
      mutate((d) => {
        d.spec.replicas = "two";
      }),
      { apiVersion: "postgresql.cnpg.io/v1", kind: "Cluster", metadata: { name: "x" }, spec: { instances: 3, storage: { size: "1Gi" }, backups: {} } },
      { apiVersion: "jetstream.nats.io/v1beta2", kind: "Stream", metadata: { name: "x" }, spec: { name: "X", subjects: ["x"], storage: "disk" } },
      { apiVersion: "example.com/v1", kind: "Widget", metadata: { name: "w" } },
      { apiVersion: "gateway.networking.k8s.io/v1", kind: "HTTPRoute", metadata: { name: "r" }, spec: { rules: [{ backendRef: [] }] } },
      {
        apiVersion: "gateway.networking.k8s.io/v1",
        kind: "GRPCRoute",
        metadata: { name: "g" },
        spec: { rules: [{ matches: [{ method: { type: "Prefix" } }] }] },
      },
      { apiVersion: "monitoring.coreos.com/v1", kind: "PodMonitor", metadata: { name: "p" }, spec: { selector: {}, podMetricEndpoints: [] } },
    ] as K8sObject[];
    const errors = typeCheck(bad);
    expect(errors.find((e) => e.object === "Deployment/flags" && /readinesProbe/.test(e.message))).toBeDefined();
    expect(errors.find((e) => e.object === "Deployment/flags" && /string/.test(e.message))).toBeDefined();
    expect(errors.find((e) => e.object === "Cluster/x" && /backups/.test(e.message))).toBeDefined();
    expect(errors.find((e) => e.object === "Stream/x" && /disk/.test(e.message))).toBeDefined();
    expect(errors.find((e) => e.object === "Widget/w")).toBeDefined();
    expect(errors.find((e) => e.object === "HTTPRoute/r" && /backendRef/.test(e.message))).toBeDefined();
    expect(errors.find((e) => e.object === "GRPCRoute/g" && /Prefix/.test(e.message))).toBeDefined();
    expect(errors.find((e) => e.object === "PodMonitor/p" && /podMetricEndpoints/.test(e.message))).toBeDefined();
  }, 60_000);

  it("Gateway API and prometheus-operator objects against their generated models' schemas", async () => {
    const rule = {
      apiVersion: "monitoring.coreos.com/v1",
      kind: "PrometheusRule",
      metadata: { name: "x" },
      spec: { groups: [{ rules: [{ alert: "A" }] }] },
    } as K8sObject;
    const gateway = {
      apiVersion: "gateway.networking.k8s.io/v1",
      kind: "Gateway",
      metadata: { name: "g" },
      spec: { gatewayClassName: "vane", listeners: [{ name: "h", port: 70000, protocol: "HTTP" }] },
    } as K8sObject;
    const errors = await validateObjects([rule, gateway]);
    expect(errors.filter((e) => e.object === "PrometheusRule/x").length).toBeGreaterThan(0);
    expect(errors.filter((e) => e.object === "Gateway/g").length).toBeGreaterThan(0);
  }, 60_000);
});

describe("grace periods", () => {
  const prod = () => rendered.get("overlays/prod") ?? [];
  const evaluatorWith = (fn: (d: any) => void): K8sObject[] =>
    prod().map((o) => {
      if (o.kind !== "Deployment" || o.metadata.name !== "evaluator") return o;
      const d = structuredClone(o) as any;
      fn(d);
      return d;
    });
  const env = (d: any) => d.spec.template.spec.containers[0].env;

  it("cover preStop + drain delay + shutdown timeout × servers for every service", () => {
    for (const overlay of ["overlays/dev", "overlays/prod"]) expect(checkGracePeriods(rendered.get(overlay) ?? [])).toEqual([]);
  });

  it("the check counts the evaluator's three servers, the ConfigMap and the env override", () => {
    // 10 s preStop + 3 × 20 s (the ConfigMap's timeout once the override is gone) + margin > 50 s.
    const v = checkGracePeriods(
      evaluatorWith((d) => {
        d.spec.template.spec.containers[0].env = env(d).filter((e: any) => e.name !== "VANE_SHUTDOWN_TIMEOUT");
      }),
    );
    expect(v.map((x) => x.object)).toEqual(["Deployment/evaluator"]);
    expect(v[0].detail).toMatch(/20 s × 3 server/);
    expect(
      checkGracePeriods(
        evaluatorWith((d) => {
          env(d).push({ name: "VANE_DRAIN_DELAY", value: "10s" });
        }),
      ).map((x) => x.object),
    ).toEqual(["Deployment/evaluator"]);
    expect(
      checkGracePeriods(
        evaluatorWith((d) => {
          d.spec.template.spec.terminationGracePeriodSeconds = 40;
        }),
      ).map((x) => x.rule),
    ).toEqual(["graceful-shutdown"]);
  });
});
