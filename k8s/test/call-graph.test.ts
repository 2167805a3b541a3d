import { beforeAll, describe, expect, it } from "vitest";
import { expectedMeshAuthorization, expectedNetworkPaths, meshAuthorization, networkPaths, parties } from "../src/call-graph.ts";
import { render, type K8sObject } from "../src/render.ts";

const apps = ["overlays/dev", "overlays/prod"] as const;
const rendered = new Map<string, K8sObject[]>();
beforeAll(() => {
  for (const overlay of apps) rendered.set(overlay, render(overlay));
});
const sorted = (m: Record<string, string[]>) =>
  Object.fromEntries(
    Object.entries(m)
      .map(([k, v]) => [k, [...v].sort()])
      .sort(),
  );

describe.each(apps)("%s", (overlay) => {
  it("NetworkPolicies allow exactly the call graph's paths", () => {
    expect(networkPaths(rendered.get(overlay) ?? [])).toEqual(expectedNetworkPaths);
  });

  it("the evaluator never reaches Postgres; only schema owners, their migrations, replicas and the operator do", () => {
    const paths = networkPaths(rendered.get(overlay) ?? []);
    expect(
      paths
        .filter((p) => p.endsWith("-> postgres:5432"))
        .map((p) => p.split(" ")[0])
        .sort(),
    ).toEqual(["analytics", "cnpg-operator", "flags", "identity", "migrate", "postgres"]);
  });

  it("Linkerd authorizes exactly the call graph's callers per route", () => {
    expect(sorted(meshAuthorization(rendered.get(overlay) ?? []))).toEqual(sorted(expectedMeshAuthorization));
  });

  it("retries only idempotent reads, gRPC ones through GRPCRoutes, with a timeout on every route", () => {
    const routes = (rendered.get(overlay) ?? []).filter(
      (o) =>
        ["HTTPRoute", "GRPCRoute"].includes(o.kind) &&
        o.apiVersion.startsWith("gateway.networking.k8s.io/") &&
        (o.spec as any).parentRefs?.[0]?.kind === "Service",
    );
    expect(routes.map((r) => `${r.kind}/${r.metadata.name}`)).toEqual(expect.arrayContaining(["GRPCRoute/flags-reads", "GRPCRoute/flags-default"]));
    const reads = /^\(Get\|List\|Evaluate\|Resolve\)/;
    for (const r of routes) {
      const annotations = r.metadata.annotations ?? {};
      const retried = Object.keys(annotations).some((k) => k.startsWith("retry.linkerd.io/"));
      const matches = (r.spec as any).rules.flatMap((rule: any) => rule.matches ?? [{}]);
      const readOnly = r.kind === "GRPCRoute" ? matches.every((m: any) => reads.test(m.method?.method ?? "")) : matches.every((m: any) => m.method === "GET");
      expect(retried && !readOnly, r.metadata.name).toBe(false);
      // Linkerd ignores gRPC retry conditions on an HTTPRoute.
      if (r.kind === "HTTPRoute") expect(annotations["retry.linkerd.io/grpc"], r.metadata.name).toBeUndefined();
      expect(annotations["timeout.linkerd.io/request"], r.metadata.name).toBeDefined();
    }
    expect(routes.find((r) => r.metadata.name === "flags-reads")?.metadata.annotations?.["retry.linkerd.io/grpc"]).toMatch(/unavailable/);
  });

  it("never attaches HTTPRoutes and GRPCRoutes to the same Service (the HTTPRoutes would be ignored)", () => {
    const kindsByParent = new Map<string, Set<string>>();
    for (const r of rendered.get(overlay) ?? []) {
      if (!["HTTPRoute", "GRPCRoute"].includes(r.kind) || !r.apiVersion.startsWith("gateway.networking.k8s.io/")) continue;
      for (const p of (r.spec as any).parentRefs ?? []) {
        if (p.kind !== "Service") continue;
        kindsByParent.set(p.name, new Set([...(kindsByParent.get(p.name) ?? []), r.kind]));
      }
    }
    for (const [parent, kinds] of kindsByParent) expect(kinds.size, parent).toBe(1);
  });
});

describe.each(apps)("%s flagd ports", (overlay) => {
  const objs = () => rendered.get(overlay) ?? [];
  it("are not routed by the public Gateway", () => {
    const gatewayRoutes = objs().filter((o) => o.kind === "HTTPRoute" && (o.spec as any).parentRefs?.some((p: any) => (p.kind ?? "Gateway") === "Gateway"));
    expect(gatewayRoutes.length).toBeGreaterThan(0);
    for (const r of gatewayRoutes) {
      for (const rule of (r.spec as any).rules) {
        for (const b of rule.backendRefs ?? []) expect([8013, 8015], r.metadata.name).not.toContain(b.port);
        for (const m of rule.matches ?? []) expect(m.path?.value ?? "", r.metadata.name).not.toMatch(/^\/flagd\./);
      }
    }
  });

  it("admit only labelled namespaces, and require a credential (an API key as the selector) on the shared evaluator", () => {
    const paths = networkPaths(objs());
    const flagdCallers = paths.filter((p) => /-> evaluator:80(13|15)$/.test(p)).map((p) => p.split(" ")[0]);
    expect([...new Set(flagdCallers)]).toEqual(["flagd-client"]);
    const evaluator = objs().find((o) => o.kind === "Deployment" && o.metadata.name === "evaluator") as any;
    const env = evaluator.spec.template.spec.containers[0].env;
    expect(env.find((e: any) => e.name === "VANE_FLAGD_AUTH")?.value).toBe("key");
    expect(env.find((e: any) => e.name === "VANE_IDENTITY_URL")?.value).toMatch(/^http:\/\/identity\./);
  });
});

describe.each(apps)("%s linkerd-viz", (overlay) => {
  it("reaches every pod's proxy admin (4191) and tap (4190) ports, and nothing else", () => {
    const viz = { name: "linkerd-viz", namespace: { "kubernetes.io/metadata.name": "linkerd-viz" } };
    const proxies = parties.filter((p) => p.pod).map((p) => ({ ...p, ports: [4190, 4191, ...(p.ports ?? [])] }));
    const paths = networkPaths(rendered.get(overlay) ?? [], [viz, ...proxies]).filter((p) => p.startsWith("linkerd-viz "));
    // Beyond the proxies' ports, only what any namespace may reach (the public APIs).
    const anyNamespace = expectedNetworkPaths.filter((p) => p.startsWith("other-namespace ")).map((p) => p.replace("other-namespace", "linkerd-viz"));
    expect(paths).toEqual([...proxies.flatMap((p) => [`linkerd-viz -> ${p.name}:4190`, `linkerd-viz -> ${p.name}:4191`]), ...anyNamespace].sort());
  });
});

describe("the network check", () => {
  it("notices an opened path and a closed one", () => {
    const objs = structuredClone(rendered.get("overlays/prod") ?? []);
    const evaluator = objs.find((o) => o.kind === "NetworkPolicy" && o.metadata.name === "evaluator") as any;
    evaluator.spec.egress.push({ to: [{ podSelector: { matchLabels: { "cnpg.io/cluster": "vane-pg" } } }], ports: [{ protocol: "TCP", port: 5432 }] });
    const postgres = objs.find((o) => o.kind === "NetworkPolicy" && o.metadata.name === "postgres") as any;
    postgres.spec.ingress[0].from.push({ podSelector: { matchLabels: { app: "evaluator" } } });
    const analytics = objs.find((o) => o.kind === "NetworkPolicy" && o.metadata.name === "analytics") as any;
    analytics.spec.egress = analytics.spec.egress.filter((r: any) => r.to[0].podSelector?.matchLabels?.app !== "flags");
    const paths = networkPaths(objs);
    expect(paths).toContain("evaluator -> postgres:5432");
    expect(paths).not.toContain("analytics -> flags:8080");
  });
});
