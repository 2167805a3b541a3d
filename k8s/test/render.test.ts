import { readFileSync } from "node:fs";
import { beforeAll, describe, expect, it } from "vitest";
import { parse } from "yaml";
import { k8sPath, overlays, ref, render, type K8sObject } from "../src/render.ts";
import { validateObjects } from "../src/validate.ts";

const rendered = new Map<string, K8sObject[]>();

beforeAll(() => {
  for (const overlay of overlays) rendered.set(overlay, render(overlay));
});

const get = (overlay: string) => rendered.get(overlay) ?? [];
const find = (objs: K8sObject[], kind: string, name: string) => objs.find((o) => o.kind === kind && o.metadata.name === name) as any;

describe.each(overlays)("%s", (overlay) => {
  it("renders with kubectl's kustomize, with unique names", () => {
    const objs = get(overlay);
    expect(objs.length).toBeGreaterThan(10);
    const refs = objs.map((o) => `${o.apiVersion}/${ref(o)}`);
    expect(new Set(refs).size).toBe(refs.length);
    for (const o of objs) if (o.kind !== "Namespace") expect(o.metadata.namespace, ref(o)).toBe("vane");
  });

  it("validates every object against its schema (Kubernetes and CRDs)", async () => {
    expect(await validateObjects(get(overlay))).toEqual([]);
  }, 60_000);

  it("runs one pinned image for every container", () => {
    const images = new Set<string>();
    for (const o of get(overlay)) {
      const spec = (o.spec as any)?.template?.spec;
      for (const c of spec?.containers ?? []) images.add(c.image);
    }
    expect(images.size).toBe(1);
    expect([...images][0]).toMatch(/^[^:]+:[\w.-]+$/);
  });
});

describe("overlays", () => {
  const deployments = (o: string) => get(o).filter((x) => x.kind === "Deployment") as any[];

  it("dev runs one replica of everything on single-replica infrastructure", () => {
    for (const d of deployments("overlays/dev")) expect(d.spec.replicas, d.metadata.name).toBe(1);
    expect(find(get("overlays/dev"), "Cluster", "vane-pg").spec.instances).toBe(1);
    expect(find(get("overlays/dev"), "Cluster", "vane-pg").spec.postgresql.synchronous).toBeUndefined();
    for (const s of get("overlays/dev").filter((o) => o.apiVersion.startsWith("jetstream.nats.io/"))) expect((s.spec as any).replicas).toBe(1);
    expect(get("overlays/dev").some((o) => o.kind === "PodDisruptionBudget")).toBe(false);
  });

  it("prod runs replicas spread over nodes with a PDB each, on HA infrastructure with backups", () => {
    const prod = get("overlays/prod");
    for (const d of deployments("overlays/prod")) {
      const name = d.metadata.name;
      const hpa = find(prod, "HorizontalPodAutoscaler", name);
      expect(hpa?.spec.minReplicas ?? d.spec.replicas, name).toBeGreaterThanOrEqual(2);
      const pdb = find(prod, "PodDisruptionBudget", name);
      expect(pdb?.spec.selector.matchLabels, name).toEqual({ app: name });
      const spread = d.spec.template.spec.topologySpreadConstraints;
      expect(spread.some((t: any) => t.topologyKey === "kubernetes.io/hostname" && t.labelSelector.matchLabels.app === name)).toBe(true);
      // A tainted node the pod cannot use must not count as an empty domain to spread to.
      for (const t of spread) expect(t.nodeTaintsPolicy, `${name} ${t.topologyKey}`).toBe("Honor");
      expect(d.spec.template.spec.affinity.podAntiAffinity).toBeDefined();
    }
    const pg = find(prod, "Cluster", "vane-pg");
    expect(pg.spec.instances).toBe(3);
    expect(pg.spec.affinity.podAntiAffinityType).toBe("required");
    expect(pg.spec.plugins[0].isWALArchiver).toBe(true);
    expect(find(prod, "ScheduledBackup", "vane-pg-nightly")).toBeDefined();
    expect(find(prod, "ObjectStore", "vane-pg-backups").spec.configuration.destinationPath).toMatch(/^s3:\/\//);
    const js = prod.filter((o) => o.apiVersion.startsWith("jetstream.nats.io/"));
    expect(js.map((o) => o.kind).sort()).toEqual(["KeyValue", "Stream", "Stream"]);
    for (const s of js) expect((s.spec as any).replicas).toBe(3);
    expect(find(prod, "KeyValue", "vane-snapshots").spec.bucket).toBe("vane_snapshots");
    expect(find(prod, "Stream", "vane-events").spec.name).toBe("VANE_EVENTS");
    expect(prod.some((o) => o.kind === "Secret")).toBe(false);
  });

  it("prod autoscales the stateless services, and leaves their replica count to the HPA", () => {
    const prod = get("overlays/prod");
    const hpas = prod.filter((o) => o.kind === "HorizontalPodAutoscaler") as any[];
    expect(hpas.map((h) => h.spec.scaleTargetRef.name).sort()).toEqual(["collector", "evaluator", "flags", "identity"]);
    for (const h of hpas) {
      const target = find(prod, h.spec.scaleTargetRef.kind, h.spec.scaleTargetRef.name);
      // A replica count in the manifest would reset the scaled-out Deployment on every apply.
      expect(target.spec.replicas, h.metadata.name).toBeUndefined();
      expect(h.spec.minReplicas).toBeGreaterThanOrEqual(2);
      // Scaled on the application container's CPU: the mesh proxy's would dilute it.
      const containers = target.spec.template.spec.containers.map((c: any) => c.name);
      for (const m of h.spec.metrics) {
        expect(m.type, h.metadata.name).toBe("ContainerResource");
        expect(containers).toContain(m.containerResource.container);
      }
    }
  });

  it("prod's database pools fit their roles' connection limits at the HPA maximum during a rollout", () => {
    const prod = get("overlays/prod");
    const roles = new Map<string, number>(find(prod, "Cluster", "vane-pg").spec.managed.roles.map((r: any) => [r.name, r.connectionLimit]));
    const checked: string[] = [];
    for (const d of deployments("overlays/prod")) {
      const server = d.spec.template.spec.containers.find((c: any) => c.name === "server");
      if (!server.env?.some((e: any) => e.name === "VANE_DATABASE_URL")) continue;
      const name = d.metadata.name;
      const maxPods = (find(prod, "HorizontalPodAutoscaler", name)?.spec.maxReplicas ?? d.spec.replicas) + (d.spec.strategy?.rollingUpdate?.maxSurge ?? 1);
      const pool = Number(server.env.find((e: any) => e.name === "VANE_DB_POOL_SIZE")?.value ?? 10);
      const limit = roles.get(name);
      expect(limit, `${name} has a role with a connection limit`).toBeDefined();
      // Two connections stay free for a migration Job running beside the service.
      expect(maxPods * pool + 2, `${name}: ${maxPods} pods × ${pool} connections`).toBeLessThanOrEqual(limit!);
      checked.push(name);
    }
    expect(checked.sort()).toEqual(["analytics", "flags", "identity"]);
  });

  it("prod enforces the restricted Pod Security profile, and every pod's telemetry names its pod, namespace and node", () => {
    const ns = find(get("overlays/prod"), "Namespace", "vane");
    expect(ns.metadata.labels["pod-security.kubernetes.io/enforce"]).toBe("restricted");
    // NATS runs in the same namespace (Helm): each of its containers must pass the profile too.
    const nats = parse(readFileSync(k8sPath("infra/nats/helm-values.yaml"), "utf8")) as any;
    for (const part of ["container", "reloader", "promExporter"]) {
      expect(nats[part].merge.securityContext, part).toMatchObject({
        allowPrivilegeEscalation: false,
        capabilities: { drop: ["ALL"] },
        runAsNonRoot: true,
        seccompProfile: { type: "RuntimeDefault" },
      });
    }
    expect(nats.podTemplate.merge.spec.securityContext).toMatchObject({ runAsNonRoot: true, seccompProfile: { type: "RuntimeDefault" } });
    for (const overlay of ["overlays/dev", "overlays/prod"]) {
      for (const d of deployments(overlay)) {
        const env: { name: string; value?: string; valueFrom?: any }[] = d.spec.template.spec.containers[0].env;
        const names = env.map((e) => e.name);
        const attrs = env.find((e) => e.name === "OTEL_RESOURCE_ATTRIBUTES")?.value ?? "";
        for (const [attr, variable, field] of [
          ["k8s.pod.name", "K8S_POD_NAME", "metadata.name"],
          ["k8s.namespace.name", "K8S_NAMESPACE", "metadata.namespace"],
          ["k8s.node.name", "K8S_NODE_NAME", "spec.nodeName"],
        ]) {
          expect(attrs, d.metadata.name).toContain(`${attr}=$(${variable})`);
          // $(VAR) expands only from variables defined before it.
          expect(names.indexOf(variable), `${d.metadata.name} ${variable}`).toBeGreaterThanOrEqual(0);
          expect(names.indexOf(variable)).toBeLessThan(names.indexOf("OTEL_RESOURCE_ATTRIBUTES"));
          expect(env.find((e) => e.name === variable)!.valueFrom.fieldRef.fieldPath).toBe(field);
        }
      }
    }
  });

  it("a configuration change rolls the pods: every Deployment reads a ConfigMap named by its content", () => {
    const names = new Map<string, string>();
    for (const overlay of ["overlays/dev", "overlays/prod"]) {
      const config = get(overlay).filter((o) => o.kind === "ConfigMap" && o.metadata.name.startsWith("vane-config"));
      expect(config.length).toBe(1);
      expect(config[0].metadata.name).toMatch(/^vane-config-[a-z0-9]{10}$/);
      names.set(overlay, config[0].metadata.name);
      for (const d of deployments(overlay)) {
        expect(
          d.spec.template.spec.containers[0].envFrom.map((e: any) => e.configMapRef.name),
          d.metadata.name,
        ).toEqual([config[0].metadata.name]);
      }
    }
    // dev patches values, so its name differs: the hash follows the final content.
    expect(names.get("overlays/dev")).not.toBe(names.get("overlays/prod"));
  });

  it("gives identity no NATS credentials (it uses no NATS)", () => {
    for (const overlay of ["overlays/dev", "overlays/prod"]) {
      const identity = find(get(overlay), "Deployment", "identity");
      expect(JSON.stringify(identity.spec.template.spec)).not.toMatch(/NATS|vane-nats/);
    }
    expect(find(get("overlays/dev"), "Secret", "vane-nats-identity")).toBeUndefined();
  });

  it("the Gateway lets the evaluation API's and the change feed's streams live, and bounds unary APIs", () => {
    const route = find(get("overlays/prod"), "HTTPRoute", "vane-api");
    for (const rule of route.spec.rules) {
      const prefix = rule.matches[0].path.value;
      expect(rule.timeouts?.request, prefix).toBe(["/vane.evaluation.v1.EvaluationService", "/vane.flags.v1.ChangeService"].includes(prefix) ? "0s" : "60s");
    }
  });

  it("migrations run the same image as the services they precede", () => {
    for (const env of ["dev", "prod"]) {
      const jobs = get(`overlays/${env}/migrations`).filter((o) => o.kind === "Job") as any[];
      expect(jobs.map((j) => j.spec.template.spec.containers[0].args)).toEqual([
        ["scripts/migrate.ts", "analytics"],
        ["scripts/migrate.ts", "flags"],
        ["scripts/migrate.ts", "identity"],
      ]);
      const image = deployments(`overlays/${env}`)[0].spec.template.spec.containers[0].image;
      for (const j of jobs) expect(j.spec.template.spec.containers[0].image).toBe(image);
      expect(get(`overlays/${env}`).some((o) => o.kind === "Job")).toBe(false);
    }
  });

  it("dev ships every Secret its workloads and Postgres roles read", () => {
    const objs = [...get("overlays/dev"), ...get("overlays/dev/migrations")];
    const secrets = new Set(objs.filter((o) => o.kind === "Secret").map((o) => o.metadata.name));
    const wanted = new Set<string>();
    const walk = (v: unknown): void => {
      if (Array.isArray(v)) v.forEach(walk);
      else if (v && typeof v === "object") {
        const rec = v as Record<string, any>;
        if (rec.secretKeyRef?.name) wanted.add(rec.secretKeyRef.name);
        if (rec.passwordSecret?.name) wanted.add(rec.passwordSecret.name);
        Object.values(rec).forEach(walk);
      }
    };
    objs.filter((o) => o.kind !== "Gateway").forEach(walk);
    expect([...wanted].filter((s) => !secrets.has(s))).toEqual([]);
  });

  it("meshes every service with a native sidecar and a deny-by-default inbound policy", () => {
    for (const o of overlays.filter((x) => !x.endsWith("migrations"))) {
      for (const d of deployments(o)) {
        expect(d.spec.template.metadata.annotations).toMatchObject({
          "linkerd.io/inject": "enabled",
          "config.alpha.linkerd.io/proxy-enable-native-sidecar": "true",
          "config.linkerd.io/default-inbound-policy": "deny",
        });
      }
    }
  });
});
