/**
 * Which route an RPC's path reaches, with the matching rule of Gateway API (which Linkerd's policy
 * HTTPRoutes share): Exact compares the whole path; PathPrefix compares whole path segments, so
 * `/vane.identity.v1.` matches nothing under `/vane.identity.v1.IdentityService/…`. Among the
 * routes of one parent, an Exact match wins over a prefix, and a longer prefix over a shorter one.
 * Used by k8s/test/routes.test.ts to replay every RPC of the contract against the rendered routes.
 */
import type { DescService } from "@bufbuild/protobuf";
import { EvaluationService } from "#gen/vane/evaluation/v1/evaluation_service_pb.js";
import { EventService } from "#gen/vane/events/v1/event_service_pb.js";
import { ExperimentService } from "#gen/vane/experiments/v1/experiment_service_pb.js";
import { ChangeService } from "#gen/vane/flags/v1/change_service_pb.js";
import { FlagService } from "#gen/vane/flags/v1/flag_service_pb.js";
import { SegmentService } from "#gen/vane/flags/v1/segment_service_pb.js";
import { AuthService } from "#gen/vane/identity/v1/auth_service_pb.js";
import { IdentityService } from "#gen/vane/identity/v1/identity_service_pb.js";
import type { K8sObject } from "./render.ts";

/** Every gRPC service of the contract, with the Vane service that serves it. */
export const contractServices: { service: DescService; servedBy: string }[] = [
  { service: IdentityService, servedBy: "identity" },
  { service: AuthService, servedBy: "identity" },
  { service: FlagService, servedBy: "flags" },
  { service: SegmentService, servedBy: "flags" },
  { service: ChangeService, servedBy: "flags" },
  { service: EvaluationService, servedBy: "evaluator" },
  { service: EventService, servedBy: "collector" },
  { service: ExperimentService, servedBy: "analytics" },
];

/** `/package.Service/Method` of every RPC, with its serving Vane service; and OFREP's HTTP paths (the evaluator's). */
export const rpcPaths: { path: string; servedBy: string }[] = [
  ...contractServices.flatMap(({ service, servedBy }) => service.methods.map((m) => ({ path: `/${service.typeName}/${m.name}`, servedBy }))),
  { path: "/ofrep/v1/evaluate/flags", servedBy: "evaluator" },
  { path: "/ofrep/v1/evaluate/flags/some-flag", servedBy: "evaluator" },
];

export interface PathMatch {
  type?: "Exact" | "PathPrefix" | "RegularExpression";
  value?: string;
}

/** Gateway API path matching (a missing path match is PathPrefix "/"). */
export function pathMatches(match: PathMatch | undefined, path: string): boolean {
  const type = match?.type ?? "PathPrefix";
  const value = match?.value ?? "/";
  if (type === "Exact") return path === value;
  if (type !== "PathPrefix") throw new Error(`path match type ${type} is not replayed here`);
  const prefix = value.length > 1 ? value.replace(/\/+$/, "") : value;
  return prefix === "/" || path === prefix || path.startsWith(`${prefix}/`);
}

interface RouteRule {
  matches?: { path?: PathMatch; method?: string }[];
  backendRefs?: { name: string; port?: number }[];
}

/** The route (and rule) of `routes` that serves a POST to `path`, by Gateway API precedence; undefined when none matches. */
export function routeFor(routes: K8sObject[], path: string): { route: K8sObject; rule: RouteRule } | undefined {
  let best: { route: K8sObject; rule: RouteRule; rank: number } | undefined;
  for (const route of routes) {
    for (const rule of ((route.spec as { rules?: RouteRule[] }).rules ?? []) as RouteRule[]) {
      for (const m of rule.matches ?? [{}]) {
        if (m.method !== undefined && m.method !== "POST") continue;
        if (!pathMatches(m.path, path)) continue;
        // Exact beats any prefix; a longer prefix beats a shorter one.
        const rank = m.path?.type === "Exact" ? Number.MAX_SAFE_INTEGER : (m.path?.value ?? "/").replace(/\/+$/, "").length;
        if (!best || rank > best.rank) best = { route, rule, rank };
      }
    }
  }
  return best && { route: best.route, rule: best.rule };
}

/** Linkerd policy HTTPRoutes attached to a Server. */
export function inboundRoutes(objects: K8sObject[], server: string): K8sObject[] {
  return objects.filter(
    (o) =>
      o.kind === "HTTPRoute" &&
      o.apiVersion.startsWith("policy.linkerd.io/") &&
      ((o.spec as { parentRefs?: { kind?: string; name: string }[] }).parentRefs ?? []).some((p) => p.kind === "Server" && p.name === server),
  );
}
