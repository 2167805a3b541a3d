/**
 * Hand-written, closed TypeScript shapes for the custom resources that have no generated
 * models on npm that run on Node 20: Linkerd 2.16+ policy, CloudNativePG 1.26+ with the Barman
 * Cloud plugin, NACK v1beta2, and Gateway API's GRPCRoute v1 (newer than
 * @kubernetes-models/gateway-api 0.5.x). Gateway API's Gateway/HTTPRoute and
 * prometheus-operator's kinds are checked with their generated models instead (./validate.ts).
 * These are written from each project's API reference, not generated: they cover the fields
 * Vane sets and the common neighbours, and a field outside them fails the schema check, which
 * is the point: a typo in a CRD object must not pass CI silently. Extend a shape when a
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

export type LinkerdServer = Resource<
  "policy.linkerd.io/v1beta3",
  "Server",
  {
    podSelector?: LabelSelector;
    externalWorkloadSelector?: LabelSelector;
    port: number | string;
    proxyProtocol?: "unknown" | "HTTP/1" | "HTTP/2" | "gRPC" | "opaque" | "TLS";
    accessPolicy?: "deny" | "all-authenticated" | "all-unauthenticated" | "cluster-authenticated" | "cluster-unauthenticated" | "audit";
  }
>;

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

export type LinkerdHTTPRoute = Resource<
  "policy.linkerd.io/v1beta3",
  "HTTPRoute",
  {
    parentRefs: ParentRef[];
    hostnames?: string[];
    rules?: Omit<HTTPRouteRule, "backendRefs">[];
  }
>;

type TargetRef = { group?: string; kind: string; name: string; namespace?: string };

export type LinkerdAuthorizationPolicy = Resource<
  "policy.linkerd.io/v1alpha1",
  "AuthorizationPolicy",
  {
    targetRef: TargetRef;
    requiredAuthenticationRefs: TargetRef[];
  }
>;

export type LinkerdMeshTLSAuthentication = Resource<
  "policy.linkerd.io/v1alpha1",
  "MeshTLSAuthentication",
  {
    identities?: string[];
    identityRefs?: { group?: string; kind: string; name?: string; namespace?: string }[];
  }
>;

export type LinkerdNetworkAuthentication = Resource<
  "policy.linkerd.io/v1alpha1",
  "NetworkAuthentication",
  {
    networks: { cidr: string; except?: string[] }[];
  }
>;

// ---- Gateway API: GRPCRoute v1 (Gateway API 1.1+) ----

type GRPCMethodMatch = { type?: "Exact" | "RegularExpression"; service?: string; method?: string };
export type GatewayApiGRPCRoute = Resource<
  "gateway.networking.k8s.io/v1",
  "GRPCRoute",
  {
    parentRefs?: ParentRef[];
    hostnames?: string[];
    rules?: {
      name?: string;
      matches?: { method?: GRPCMethodMatch; headers?: HeaderMatch[] }[];
      filters?: HTTPRouteFilter[];
      backendRefs?: BackendRef[];
    }[];
  }
>;

// ---- CloudNativePG ----

export type CnpgCluster = Resource<
  "postgresql.cnpg.io/v1",
  "Cluster",
  {
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
  }
>;

export type CnpgDatabase = Resource<
  "postgresql.cnpg.io/v1",
  "Database",
  {
    cluster: LocalRef;
    name: string;
    owner: string;
    ensure?: "present" | "absent";
    databaseReclaimPolicy?: "retain" | "delete";
  }
>;

export type CnpgScheduledBackup = Resource<
  "postgresql.cnpg.io/v1",
  "ScheduledBackup",
  {
    schedule: string;
    cluster: LocalRef;
    immediate?: boolean;
    suspend?: boolean;
    backupOwnerReference?: "none" | "self" | "cluster";
    method?: "barmanObjectStore" | "volumeSnapshot" | "plugin";
    pluginConfiguration?: { name: string; parameters?: Record<string, string> };
    target?: "primary" | "prefer-standby";
  }
>;

export type BarmanObjectStore = Resource<
  "barmancloud.cnpg.io/v1",
  "ObjectStore",
  {
    retentionPolicy?: string;
    configuration: {
      destinationPath: string;
      endpointURL?: string;
      s3Credentials?: { accessKeyId?: SecretKeySelector; secretAccessKey?: SecretKeySelector; region?: SecretKeySelector; inheritFromIAMRole?: boolean };
      googleCredentials?: { applicationCredentials?: SecretKeySelector; gkeEnvironment?: boolean };
      azureCredentials?: {
        connectionString?: SecretKeySelector;
        storageAccount?: SecretKeySelector;
        storageKey?: SecretKeySelector;
        inheritFromAzureAD?: boolean;
      };
      wal?: { compression?: "gzip" | "bzip2" | "snappy" | "lz4" | "xz" | "zstd"; maxParallel?: number; encryption?: "AES256" | "aws:kms" };
      data?: { compression?: "gzip" | "bzip2" | "snappy"; jobs?: number; encryption?: "AES256" | "aws:kms" };
    };
  }
>;

// ---- NACK (NATS JetStream controller) ----

export type NackStream = Resource<
  "jetstream.nats.io/v1beta2",
  "Stream",
  {
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
    /** NACK: keep the stream in NATS when this object is deleted. */
    preventDelete?: boolean;
    preventUpdate?: boolean;
    account?: string;
  }
>;

export type NackKeyValue = Resource<
  "jetstream.nats.io/v1beta2",
  "KeyValue",
  {
    bucket: string;
    description?: string;
    history?: number;
    replicas?: number;
    storage?: "file" | "memory";
    ttl?: Duration;
    maxBytes?: number;
    maxValueSize?: number;
    /** NACK: keep the bucket in NATS when this object is deleted. */
    preventDelete?: boolean;
    preventUpdate?: boolean;
    account?: string;
  }
>;

/** apiVersion/kind → the exported type name above. */
export const crdTypes: Record<string, string> = {
  "policy.linkerd.io/v1beta3/Server": "LinkerdServer",
  "policy.linkerd.io/v1beta3/HTTPRoute": "LinkerdHTTPRoute",
  "policy.linkerd.io/v1alpha1/AuthorizationPolicy": "LinkerdAuthorizationPolicy",
  "policy.linkerd.io/v1alpha1/MeshTLSAuthentication": "LinkerdMeshTLSAuthentication",
  "policy.linkerd.io/v1alpha1/NetworkAuthentication": "LinkerdNetworkAuthentication",
  "gateway.networking.k8s.io/v1/GRPCRoute": "GatewayApiGRPCRoute",
  "postgresql.cnpg.io/v1/Cluster": "CnpgCluster",
  "postgresql.cnpg.io/v1/Database": "CnpgDatabase",
  "postgresql.cnpg.io/v1/ScheduledBackup": "CnpgScheduledBackup",
  "barmancloud.cnpg.io/v1/ObjectStore": "BarmanObjectStore",
  "jetstream.nats.io/v1beta2/Stream": "NackStream",
  "jetstream.nats.io/v1beta2/KeyValue": "NackKeyValue",
};
