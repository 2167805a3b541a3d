/**
 * Every RPC of the contract reaches its service through the rendered routes, replayed with Gateway
 * API's segment-wise matching (k8s/src/routes.ts): through the Gateway from outside, and through
 * the serving pod's inbound Linkerd routes, whose authorization admits the ingress for every RPC and
 * each service-to-service caller for exactly the RPCs it calls (call-graph.ts's serviceCalls).
 * Routes compared by name could not see that `/vane.identity.v1.` matched no RPC at all.
 */
import { beforeAll, describe, expect, it } from "vitest";
import { meshAuthorization, serviceCalls } from "../src/call-graph.ts";
import { render, type K8sObject } from "../src/render.ts";
import { inboundRoutes, pathMatches, routeFor, rpcPaths } from "../src/routes.ts";

const apps = ["overlays/dev", "overlays/prod"] as const;
const rendered = new Map<string, K8sObject[]>();
beforeAll(() => {
  for (const overlay of apps) rendered.set(overlay, render(overlay));
});

describe("Gateway API path matching", () => {
  it("compares whole segments", () => {
    expect(pathMatches({ type: "PathPrefix", value: "/vane.identity.v1." }, "/vane.identity.v1.IdentityService/GetProject")).toBe(false);
    expect(pathMatches({ type: "PathPrefix", value: "/vane.identity.v1.IdentityService" }, "/vane.identity.v1.IdentityService/GetProject")).toBe(true);
    expect(pathMatches({ type: "PathPrefix", value: "/vane.flags.v1.ChangeService/" }, "/vane.flags.v1.ChangeService/WatchChanges")).toBe(true);
    expect(pathMatches({ type: "PathPrefix", value: "/vane.flags.v1.Flag" }, "/vane.flags.v1.FlagService/GetFlag")).toBe(false);
    expect(pathMatches({ type: "Exact", value: "/a/b" }, "/a/b")).toBe(true);
    expect(pathMatches(undefined, "/anything")).toBe(true);
  });
});

describe.each(apps)("%s", (overlay) => {
  const objects = () => rendered.get(overlay) ?? [];

  it("the Gateway sends every RPC of the contract to the service that serves it", () => {
    const gateway = objects().filter((o) => o.kind === "HTTPRoute" && o.apiVersion.startsWith("gateway.networking.k8s.io/") && o.metadata.name === "vane-api");
    expect(gateway).toHaveLength(1);
    const unrouted = rpcPaths.filter(({ path, servedBy }) => routeFor(gateway, path)?.rule.backendRefs?.[0]?.name !== servedBy).map((r) => r.path);
    expect(unrouted).toEqual([]);
  });

  it("each pod's inbound routes match every RPC it serves, and admit the ingress to each", () => {
    const auth = meshAuthorization(objects());
    const problems: string[] = [];
    for (const { path, servedBy } of rpcPaths) {
      const hit = routeFor(inboundRoutes(objects(), `${servedBy}-grpc`), path);
      if (!hit) problems.push(`${path}: no inbound route on ${servedBy}`);
      else if (!(auth[hit.route.metadata.name] ?? []).some((who) => who === "ingress" || who === "anywhere"))
        problems.push(`${path}: route ${hit.route.metadata.name} does not admit the ingress`);
    }
    expect(problems).toEqual([]);
  });

  it("admits each service-to-service caller to exactly the RPCs it calls", () => {
    const auth = meshAuthorization(objects());
    for (const [caller, calls] of Object.entries(serviceCalls)) {
      // Everything the caller needs is admitted…
      for (const path of calls) {
        const servedBy = rpcPaths.find((r) => r.path === path)?.servedBy;
        expect(servedBy, `${path} is an RPC of the contract`).toBeDefined();
        const hit = routeFor(inboundRoutes(objects(), `${servedBy}-grpc`), path);
        expect(auth[hit?.route.metadata.name ?? ""] ?? [], `${caller} → ${path}`).toContain(caller);
      }
      // …and nothing else of the contract.
      const admitted = rpcPaths
        .filter(({ path, servedBy }) => (auth[routeFor(inboundRoutes(objects(), `${servedBy}-grpc`), path)?.route.metadata.name ?? ""] ?? []).includes(caller))
        .map((r) => r.path);
      expect(admitted.sort(), caller).toEqual([...calls].sort());
    }
  });
});
