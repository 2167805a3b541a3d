/**
 * Vane's call graph, the single statement of who may talk to whom, and the functions that
 * read the same graph back out of rendered NetworkPolicies and Linkerd authorization, so
 * tests can assert the manifests allow exactly these paths.
 */
import type { K8sObject } from "./render.ts";

/** The five services. */
export const services = ["identity", "flags", "evaluator", "collector", "analytics"] as const;

type Labels = Record<string, string>;

/** A party in the graph: pods in Vane's namespace, or a whole other namespace. */
export interface Party {
  name: string;
  /** Pod labels, for pods in Vane's namespace. */
  pod?: Labels;
  /** Namespace labels, for callers from other namespaces. */
  namespace?: Labels;
  /** Ports it listens on. */
  ports?: number[];
}

const ns = (name: string, extra: Labels = {}): Labels => ({ "kubernetes.io/metadata.name": name, ...extra });

/** Every party the NetworkPolicies are judged against. */
export const parties: Party[] = [
  ...services.map((s) => ({
    name: s,
    pod: { app: s, "app.kubernetes.io/part-of": "vane" },
    ports: s === "evaluator" ? [8080, 8013, 8015] : [8080],
  })),
  { name: "migrate", pod: { app: "migrate-flags", "app.kubernetes.io/component": "migration", "app.kubernetes.io/part-of": "vane" } },
  { name: "postgres", pod: { "cnpg.io/cluster": "vane-pg", "cnpg.io/instanceRole": "primary" }, ports: [5432, 8000, 9187] },
  { name: "nats", pod: { "app.kubernetes.io/name": "nats", "app.kubernetes.io/instance": "nats" }, ports: [4222, 6222, 7777, 8222, 4143] },
  { name: "ingress", namespace: ns("vane-ingress", { "vane.dev/ingress": "true" }) },
  { name: "monitoring", namespace: ns("monitoring") },
  { name: "nack", namespace: ns("nack-system") },
  { name: "cnpg-operator", namespace: ns("cnpg-system") },
  { name: "other-namespace", namespace: ns("shop") },
  { name: "flagd-client", namespace: ns("storefront", { "vane.dev/flagd-client": "true" }) },
];

/** Expected network paths, "from -> to:port". Everything else must be denied. */
export const expectedNetworkPaths: string[] = (() => {
  const p: string[] = [];
  const add = (from: string, to: string, ...ports: number[]) => ports.forEach((port) => p.push(`${from} -> ${to}:${port}`));
  for (const caller of ["ingress", "other-namespace", "flagd-client", "monitoring", "nack", "cnpg-operator"]) {
    add(caller, "evaluator", 8080);
    add(caller, "collector", 8080);
  }
  // The flagd ports take API keys as selectors: only namespaces an operator labels reach them.
  add("flagd-client", "evaluator", 8013, 8015);
  for (const s of services) add("monitoring", s, 8080);
  for (const s of ["identity", "flags", "analytics"]) add("ingress", s, 8080);
  for (const s of ["flags", "evaluator", "collector", "analytics"]) add(s, "identity", 8080);
  add("analytics", "flags", 8080);
  for (const s of ["identity", "flags", "analytics", "migrate", "postgres"]) add(s, "postgres", 5432);
  add("cnpg-operator", "postgres", 5432, 8000);
  add("monitoring", "postgres", 9187);
  // identity keeps no state on NATS: no credentials, no path.
  for (const s of [...services.filter((x) => x !== "identity"), "nack"]) add(s, "nats", 4222, 4143);
  add("nats", "nats", 6222, 4143);
  add("monitoring", "nats", 7777, 8222);
  return [...new Set(p)].sort();
})();

/**
 * The RPCs each service calls on another, and nothing more: its mesh authorization must admit
 * exactly these (k8s/test/routes.test.ts replays them against the rendered routes).
 */
export const serviceCalls: Record<string, string[]> = {
  // The identity directory: projects and environments of a caller's organization.
  flags: [
    "/vane.identity.v1.IdentityService/GetProject",
    "/vane.identity.v1.IdentityService/GetEnvironment",
    "/vane.identity.v1.IdentityService/ListEnvironments",
  ],
  analytics: [
    "/vane.identity.v1.IdentityService/GetProject",
    "/vane.identity.v1.IdentityService/GetEnvironment",
    "/vane.identity.v1.IdentityService/ListEnvironments",
    // The bandit's credential (VANE_BANDIT_API_KEY), and the experiment flag it starts, stops and re-weights.
    "/vane.identity.v1.AuthService/ExchangeApiKey",
    "/vane.flags.v1.FlagService/GetFlag",
    "/vane.flags.v1.FlagService/UpdateFlagEnvironment",
  ],
  // API keys used as flagd selectors.
  evaluator: ["/vane.identity.v1.AuthService/ExchangeApiKey"],
};

/** Expected Linkerd authorization: route or server -> who may call it. */
export const expectedMeshAuthorization: Record<string, string[]> = (() => {
  const m: Record<string, string[]> = {
    "identity-api": ["ingress"],
    "identity-lookups": ["analytics", "flags", "ingress"],
    "identity-key-exchange": ["analytics", "evaluator", "ingress"],
    "identity-jwks": ["analytics", "collector", "evaluator", "flags"],
    "flags-api": ["ingress"],
    "flags-experiment-control": ["analytics", "ingress"],
    "evaluator-api": ["anywhere"],
    "collector-api": ["anywhere"],
    "analytics-api": ["ingress"],
    "evaluator-flagd": ["meshed"],
    "evaluator-flagd-sync": ["meshed"],
    "nats-client": ["analytics", "collector", "evaluator", "flags", "nack-system/nack"],
    "nats-cluster": ["nats"],
  };
  for (const s of services) {
    m[`${s}-probes`] = ["anywhere"];
    m[`${s}-metrics`] = ["anywhere"];
  }
  return m;
})();

interface Selector {
  matchLabels?: Labels;
  matchExpressions?: { key: string; operator: string; values?: string[] }[];
}

/** Kubernetes label-selector semantics. */
export function matches(selector: Selector | undefined, labels: Labels): boolean {
  if (!selector) return true;
  for (const [k, v] of Object.entries(selector.matchLabels ?? {})) if (labels[k] !== v) return false;
  for (const e of selector.matchExpressions ?? []) {
    const has = e.key in labels;
    const value = labels[e.key];
    const ok =
      e.operator === "In"
        ? has && (e.values ?? []).includes(value)
        : e.operator === "NotIn"
          ? !has || !(e.values ?? []).includes(value)
          : e.operator === "Exists"
            ? has
            : e.operator === "DoesNotExist"
              ? !has
              : false;
    if (!ok) return false;
  }
  return true;
}

interface Peer {
  podSelector?: Selector;
  namespaceSelector?: Selector;
  ipBlock?: unknown;
}
interface Rule {
  from?: Peer[];
  to?: Peer[];
  ports?: { port?: number | string; protocol?: string }[];
}
interface NetworkPolicySpec {
  podSelector: Selector;
  policyTypes?: string[];
  ingress?: Rule[];
  egress?: Rule[];
}

const vaneNamespace = ns("vane");

/** Does a peer entry cover a party? ipBlocks are treated as outside the cluster. */
function peerMatches(peer: Peer, party: Party): boolean {
  if (peer.ipBlock) return false;
  if (party.pod) {
    if (peer.namespaceSelector && !matches(peer.namespaceSelector, vaneNamespace)) return false;
    return peer.podSelector ? matches(peer.podSelector, party.pod) : true;
  }
  if (!peer.namespaceSelector) return false; // a bare podSelector means this namespace only
  return matches(peer.namespaceSelector, party.namespace ?? {}) && peer.podSelector === undefined;
}

function allows(policies: NetworkPolicySpec[], direction: "Ingress" | "Egress", self: Party, other: Party, port: number): boolean {
  const selecting = policies.filter((p) => (p.policyTypes ?? ["Ingress"]).includes(direction) && matches(p.podSelector, self.pod ?? {}));
  if (selecting.length === 0) return true;
  return selecting.some((p) =>
    ((direction === "Ingress" ? p.ingress : p.egress) ?? []).some((rule) => {
      const peers = direction === "Ingress" ? rule.from : rule.to;
      const peerOk = peers === undefined || peers.some((peer) => peerMatches(peer, other));
      const portOk = rule.ports === undefined || rule.ports.some((rp) => rp.port === undefined || rp.port === port);
      return peerOk && portOk;
    }),
  );
}

/** The paths the rendered NetworkPolicies allow between the parties, "from -> to:port". */
export function networkPaths(objects: K8sObject[], among: Party[] = parties): string[] {
  const policies = objects.filter((o) => o.kind === "NetworkPolicy").map((o) => o.spec as NetworkPolicySpec);
  const paths: string[] = [];
  for (const to of among) {
    if (!to.pod) continue;
    for (const port of to.ports ?? []) {
      for (const from of among) {
        const ingressOk = allows(policies, "Ingress", to, from, port);
        const egressOk = from.pod ? allows(policies, "Egress", from, to, port) : true;
        if (ingressOk && egressOk) paths.push(`${from.name} -> ${to.name}:${port}`);
      }
    }
  }
  return paths.sort();
}

/** Route or Server -> sorted caller names, read from rendered Linkerd policy objects. */
export function meshAuthorization(objects: K8sObject[]): Record<string, string[]> {
  const find = (kind: string, name: string) =>
    objects.find((o) => o.kind === kind && o.metadata.name === name && o.apiVersion.startsWith("policy.linkerd.io/"));
  const callers = (authKind: string, authName: string): string[] => {
    const auth = find(authKind, authName) as { spec: Record<string, any> } | undefined; // eslint-disable-line @typescript-eslint/no-explicit-any -- CRD spec of any shape
    if (!auth) return [`missing ${authKind}/${authName}`];
    if (authKind === "NetworkAuthentication") return ["anywhere"];
    const names: string[] = [];
    for (const r of auth.spec.identityRefs ?? []) names.push(r.namespace ? `${r.namespace}/${r.name}` : r.name);
    for (const id of auth.spec.identities ?? []) names.push(/^\*\.vane-ingress\./.test(id) ? "ingress" : id === "*" ? "meshed" : id);
    return names;
  };
  const out: Record<string, string[]> = {};
  for (const ap of objects.filter((o) => o.kind === "AuthorizationPolicy")) {
    const spec = ap.spec as { targetRef: { kind: string; name: string }; requiredAuthenticationRefs: { kind: string; name: string }[] };
    if (spec.requiredAuthenticationRefs.length !== 1) throw new Error(`${ap.metadata.name}: one authentication per policy keeps the graph readable`);
    const target = spec.targetRef.kind === "Server" ? spec.targetRef.name.replace(/-grpc$/, "") : spec.targetRef.name;
    const who = callers(spec.requiredAuthenticationRefs[0].kind, spec.requiredAuthenticationRefs[0].name);
    out[target] = [...new Set([...(out[target] ?? []), ...who])].sort();
  }
  return out;
}
