/**
 * Closed TypeScript shapes for the custom resources Vane's manifests use, written from each
 * project's API reference (Linkerd 2.16+, Gateway API v1, prometheus-operator v1,
 * CloudNativePG 1.26+ with the Barman Cloud plugin, NACK v1beta2). They cover the fields
 * Vane sets and the common neighbours; a field outside them fails the schema check, which is
 * the point: a typo in a CRD object must not pass CI silently. Extend a shape when a
 * manifest needs a field it lacks.
 */
import type { IPod, IPodSpec, IContainer, IEnvVar } from "kubernetes-models/v1";
import type { IDeployment } from "kubernetes-models/apps/v1";

type ObjectMeta = NonNullable<IPod["metadata"]>;
type LabelSelector = NonNullable<IDeployment["spec"]>["selector"];
type Resources = NonNullable<IContainer["resources"]>;
type SecretKeySelector = NonNullable<NonNullable<IEnvVar["valueFrom"]>["secretKeyRef"]>;
type Duration = string;
type LocalRef = { name: string };

interface Resource<V extends string, K extends string, S> {
  apiVersion: V;
  kind: K;
  metadata: ObjectMeta;
  spec: S;
}

// ---- Linkerd policy ----

export type LinkerdServer = Resource<"policy.linkerd.io/v1beta3", "Server", {
  podSelector?: LabelSelector;
  externalWorkloadSelector?: LabelSelector;
  port: number | string;
  proxyProtocol?: "unknown" | "HTTP/1" | "HTTP/2" | "gRPC" | "opaque" | "TLS";
  accessPolicy?: "deny" | "all-authenticated" | "all-unauthenticated" | "cluster-authenticated" | "cluster-unauthenticated" | "audit";
}>;

type ParentRef = { group?: string; kind?: string; name: string; namespace?: string; port?: number; sectionName?: string };
type PathMatch = { type?: "Exact" | "PathPrefix" | "RegularExpression"; value?: string };
type HeaderMatch = { type?: "Exact" | "RegularExpression"; name: string; value: string };
type HttpMethod = "GET" | "HEAD" | "POST" | "PUT" | "DELETE" | "CONNECT" | "OPTIONS" | "TRACE" | "PATCH";
type HTTPRouteMatch = { path?: PathMatch; headers?: HeaderMatch[]; queryParams?: HeaderMatch[]; method?: HttpMethod };
type BackendRef = { group?: string; kind?: string; name: string; namespace?: string; port?: number; weight?: number };
type HTTPRouteFilter =
  | { type: "RequestRedirect"; requestRedirect: { scheme?: "http" | "https"; hostname?: string; port?: number; statusCode?: 301 | 302 } }
  | { type: "RequestHeaderModifier" | "ResponseHeaderModifier"; requestHeaderModifier?: HeaderModifier; responseHeaderModifier?: HeaderModifier };
type HeaderModifier = { set?: { name: string; value: string }[]; add?: { name: string; value: string }[]; remove?: string[] };
type HTTPRouteRule = {
  name?: string;
  matches?: HTTPRouteMatch[];
  filters?: HTTPRouteFilter[];
  backendRefs?: BackendRef[];
  timeouts?: { request?: Duration; backendRequest?: Duration };
};

export type LinkerdHTTPRoute = Resource<"policy.linkerd.io/v1beta3", "HTTPRoute", {
  parentRefs: ParentRef[];
  hostnames?: string[];
  rules?: Omit<HTTPRouteRule, "backendRefs">[];
}>;

type TargetRef = { group?: string; kind: string; name: string; namespace?: string };

export type LinkerdAuthorizationPolicy = Resource<"policy.linkerd.io/v1alpha1", "AuthorizationPolicy", {
  targetRef: TargetRef;
  requiredAuthenticationRefs: TargetRef[];
}>;

export type LinkerdMeshTLSAuthentication = Resource<"policy.linkerd.io/v1alpha1", "MeshTLSAuthentication", {
  identities?: string[];
  identityRefs?: { group?: string; kind: string; name?: string; namespace?: string }[];
}>;

export type LinkerdNetworkAuthentication = Resource<"policy.linkerd.io/v1alpha1", "NetworkAuthentication", {
  networks: { cidr: string; except?: string[] }[];
}>;

// ---- Gateway API ----

export type GatewayApiGateway = Resource<"gateway.networking.k8s.io/v1", "Gateway", {
  gatewayClassName: string;
  listeners: {
    name: string;
    hostname?: string;
    port: number;
    protocol: "HTTP" | "HTTPS" | "TLS" | "TCP" | "UDP";
    tls?: { mode?: "Terminate" | "Passthrough"; certificateRefs?: { group?: string; kind?: string; name: string; namespace?: string }[] };
    allowedRoutes?: { namespaces?: { from?: "All" | "Same" | "Selector"; selector?: LabelSelector }; kinds?: { group?: string; kind: string }[] };
  }[];
  addresses?: { type?: string; value: string }[];
}>;

export type GatewayApiHTTPRoute = Resource<"gateway.networking.k8s.io/v1", "HTTPRoute", {
  parentRefs?: ParentRef[];
  hostnames?: string[];
  rules?: HTTPRouteRule[];
}>;

// ---- prometheus-operator ----

export type PodMonitor = Resource<"monitoring.coreos.com/v1", "PodMonitor", {
  selector: LabelSelector;
  namespaceSelector?: { any?: boolean; matchNames?: string[] };
  jobLabel?: string;
  podMetricsEndpoints: {
    port?: string;
    path?: string;
    scheme?: "http" | "https";
    interval?: Duration;
    scrapeTimeout?: Duration;
    honorLabels?: boolean;
  }[];
}>;

export type PrometheusRule = Resource<"monitoring.coreos.com/v1", "PrometheusRule", {
  groups: {
    name: string;
    interval?: Duration;
    rules: (
      | { record: string; expr: string; labels?: Record<string, string> }
      | { alert: string; expr: string; for?: Duration; keep_firing_for?: Duration; labels?: Record<string, string>; annotations?: Record<string, string> }
    )[];
  }[];
}>;

// ---- CloudNativePG ----

export type CnpgCluster = Resource<"postgresql.cnpg.io/v1", "Cluster", {
  instances: number;
  imageName?: string;
  primaryUpdateStrategy?: "unsupervised" | "supervised";
  primaryUpdateMethod?: "switchover" | "restart";
  enableSuperuserAccess?: boolean;
  postgresql?: {
    parameters?: Record<string, string>;
    synchronous?: { method: "any" | "first"; number: number; dataDurability?: "required" | "preferred" };
    pg_hba?: string[];
  };
  bootstrap?: {
    initdb?: { database?: string; owner?: string; secret?: LocalRef };
    recovery?: { source?: string; backup?: LocalRef; recoveryTarget?: { targetTime?: string; targetLSN?: string } };
  };
  externalClusters?: { name: string; plugin?: { name: string; parameters?: Record<string, string> } }[];
  storage: { size: string; storageClass?: string };
  walStorage?: { size: string; storageClass?: string };
  affinity?: {
    enablePodAntiAffinity?: boolean;
    topologyKey?: string;
    podAntiAffinityType?: "preferred" | "required";
    nodeSelector?: Record<string, string>;
    tolerations?: NonNullable<IPodSpec["tolerations"]>;
  };
  resources?: Resources;
  managed?: {
    roles?: {
      name: string;
      ensure?: "present" | "absent";
      login?: boolean;
      superuser?: boolean;
      createdb?: boolean;
      connectionLimit?: number;
      inRoles?: string[];
      passwordSecret?: LocalRef;
    }[];
  };
  plugins?: { name: string; enabled?: boolean; isWALArchiver?: boolean; parameters?: Record<string, string> }[];
  monitoring?: { enablePodMonitor?: boolean };
}>;

export type CnpgDatabase = Resource<"postgresql.cnpg.io/v1", "Database", {
  cluster: LocalRef;
  name: string;
  owner: string;
  ensure?: "present" | "absent";
  databaseReclaimPolicy?: "retain" | "delete";
}>;

export type CnpgScheduledBackup = Resource<"postgresql.cnpg.io/v1", "ScheduledBackup", {
  schedule: string;
  cluster: LocalRef;
  immediate?: boolean;
  suspend?: boolean;
  backupOwnerReference?: "none" | "self" | "cluster";
  method?: "barmanObjectStore" | "volumeSnapshot" | "plugin";
  pluginConfiguration?: { name: string; parameters?: Record<string, string> };
  target?: "primary" | "prefer-standby";
}>;

export type BarmanObjectStore = Resource<"barmancloud.cnpg.io/v1", "ObjectStore", {
  retentionPolicy?: string;
  configuration: {
    destinationPath: string;
    endpointURL?: string;
    s3Credentials?: { accessKeyId?: SecretKeySelector; secretAccessKey?: SecretKeySelector; region?: SecretKeySelector; inheritFromIAMRole?: boolean };
    googleCredentials?: { applicationCredentials?: SecretKeySelector; gkeEnvironment?: boolean };
    azureCredentials?: { connectionString?: SecretKeySelector; storageAccount?: SecretKeySelector; storageKey?: SecretKeySelector; inheritFromAzureAD?: boolean };
    wal?: { compression?: "gzip" | "bzip2" | "snappy" | "lz4" | "xz" | "zstd"; maxParallel?: number; encryption?: "AES256" | "aws:kms" };
    data?: { compression?: "gzip" | "bzip2" | "snappy"; jobs?: number; encryption?: "AES256" | "aws:kms" };
  };
}>;

// ---- NACK (NATS JetStream controller) ----

export type NackStream = Resource<"jetstream.nats.io/v1beta2", "Stream", {
  name: string;
  description?: string;
  subjects: string[];
  storage: "file" | "memory";
  replicas?: number;
  retention?: "limits" | "interest" | "workqueue";
  discard?: "old" | "new";
  maxAge?: Duration;
  maxBytes?: number;
  maxMsgs?: number;
  maxMsgSize?: number;
  duplicateWindow?: Duration;
  denyDelete?: boolean;
  account?: string;
}>;

export type NackKeyValue = Resource<"jetstream.nats.io/v1beta2", "KeyValue", {
  bucket: string;
  description?: string;
  history?: number;
  replicas?: number;
  storage?: "file" | "memory";
  ttl?: Duration;
  maxBytes?: number;
  maxValueSize?: number;
  account?: string;
}>;

/** apiVersion/kind → the exported type name above. */
export const crdTypes: Record<string, string> = {
  "policy.linkerd.io/v1beta3/Server": "LinkerdServer",
  "policy.linkerd.io/v1beta3/HTTPRoute": "LinkerdHTTPRoute",
  "policy.linkerd.io/v1alpha1/AuthorizationPolicy": "LinkerdAuthorizationPolicy",
  "policy.linkerd.io/v1alpha1/MeshTLSAuthentication": "LinkerdMeshTLSAuthentication",
  "policy.linkerd.io/v1alpha1/NetworkAuthentication": "LinkerdNetworkAuthentication",
  "gateway.networking.k8s.io/v1/Gateway": "GatewayApiGateway",
  "gateway.networking.k8s.io/v1/HTTPRoute": "GatewayApiHTTPRoute",
  "monitoring.coreos.com/v1/PodMonitor": "PodMonitor",
  "monitoring.coreos.com/v1/PrometheusRule": "PrometheusRule",
  "postgresql.cnpg.io/v1/Cluster": "CnpgCluster",
  "postgresql.cnpg.io/v1/Database": "CnpgDatabase",
  "postgresql.cnpg.io/v1/ScheduledBackup": "CnpgScheduledBackup",
  "barmancloud.cnpg.io/v1/ObjectStore": "BarmanObjectStore",
  "jetstream.nats.io/v1beta2/Stream": "NackStream",
  "jetstream.nats.io/v1beta2/KeyValue": "NackKeyValue",
};
