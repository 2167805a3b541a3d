/**
 * NATS JetStream for services: one long-lived connection that never gives up
 * reconnecting, declarative streams and KV buckets that every replica may
 * ensure at start-up, and traced, de-duplicated event publishing.
 */
import { context, SpanKind, trace } from "@opentelemetry/api";
import {
  DiscardPolicy,
  jetstream,
  jetstreamManager,
  JetStreamApiCodes,
  JetStreamApiError,
  RetentionPolicy,
  StorageType,
  type JetStreamClient,
  type JetStreamManager,
  type PubAck,
  type StreamConfig,
  type StreamInfo,
} from "@nats-io/jetstream";
import { Kvm, type KV } from "@nats-io/kv";
import { connect, credsAuthenticator, headers as createHeaders, type MsgHdrs, type NatsConnection } from "@nats-io/transport-node";
import { pino, type Logger } from "pino";
import {
  ATTR_MESSAGING_DESTINATION_NAME,
  ATTR_MESSAGING_MESSAGE_BODY_SIZE,
  ATTR_MESSAGING_MESSAGE_ID,
  ATTR_MESSAGING_OPERATION_NAME,
  ATTR_MESSAGING_OPERATION_TYPE,
  ATTR_MESSAGING_SYSTEM,
  BUS_TRACER,
  injectTraceHeaders,
  runInSpan,
} from "#lib/bus/bus-trace.ts";

/** Options for {@link connectBus}. */
export interface BusOptions {
  /** One or more `nats://host:port` URLs (a cluster's seed list). */
  servers: string | string[];
  /** Connection name shown by the server (`nats server report connections`): the service name. */
  name: string;
  logger?: Logger;
  /** Token authentication. */
  token?: string;
  /** Contents of a `.creds` file (JWT + NKey seed) for decentralised auth. */
  credentials?: string;
  /** How often to log while waiting for the first connection, in ms (default 5 000). */
  waitLogIntervalMs?: number;
  /**
   * Who owns the streams and KV buckets: "service" (default) creates and reconciles them at
   * start-up; "external" (an operator such as NACK does) only verifies they exist. Carried as
   * {@link Bus.manageJetStream} for the `manage` field of stream and bucket specs.
   */
  jetStream?: JetStreamManagement;
}

/** Who creates and configures streams and KV buckets (`VANE_JETSTREAM_MANAGED`). */
export type JetStreamManagement = "service" | "external";

/** The connection state reported by {@link Bus.status}. */
export type BusStatus = "connected" | "reconnecting" | "closed";

/** A service's NATS connection and JetStream handles, returned by {@link connectBus}. */
export interface Bus {
  readonly nc: NatsConnection;
  readonly js: JetStreamClient;
  readonly jsm: JetStreamManager;
  readonly kvm: Kvm;
  /** False when streams and buckets are managed externally: pass it as `manage` to ensureStream/ensureKv. */
  readonly manageJetStream: boolean;
  /** Current state, for health checks: NOT_SERVING while not "connected" if the service needs NATS. */
  status(): BusStatus;
  /** Flushes pending publishes, drains subscriptions and closes. Safe to call more than once. */
  drain(): Promise<void>;
}

/**
 * Connects to NATS and waits until connected. When the server is down at start
 * it keeps trying forever (logging every `waitLogIntervalMs`), and after that
 * reconnects forever; a service that must serve without NATS should therefore
 * start serving before awaiting this promise.
 */
export async function connectBus(options: BusOptions): Promise<Bus> {
  const logger = options.logger ?? pino({ level: "silent" });
  const { servers, user, pass } = splitCredentials(Array.isArray(options.servers) ? options.servers : [options.servers]);
  const started = Date.now();
  // connect() gives no status stream until the first connection succeeds, so
  // report the wait ourselves.
  const waiting = setInterval(() => logger.warn({ servers, waitedMs: Date.now() - started }, "waiting for NATS"), options.waitLogIntervalMs ?? 5_000);
  waiting.unref();
  let nc: NatsConnection;
  try {
    nc = await connect({
      servers,
      name: options.name,
      maxReconnectAttempts: -1,
      waitOnFirstConnect: true,
      reconnectTimeWait: 1_000,
      // Notice a dead server in ~1 minute rather than the default ~4.
      pingInterval: 20_000,
      maxPingOut: 3,
      ...(user !== undefined ? { user, pass } : {}),
      ...(options.token ? { token: options.token } : {}),
      ...(options.credentials ? { authenticator: credsAuthenticator(new TextEncoder().encode(options.credentials)) } : {}),
    });
  } finally {
    clearInterval(waiting);
  }
  logger.info({ server: nc.getServer(), name: options.name }, "connected to NATS");

  let state: BusStatus = "connected";
  void (async () => {
    for await (const s of nc.status()) {
      switch (s.type) {
        case "disconnect":
          state = "reconnecting";
          logger.warn({ server: s.server }, "disconnected from NATS; reconnecting");
          break;
        case "reconnecting":
          state = "reconnecting";
          logger.debug("reconnecting to NATS");
          break;
        case "reconnect":
          state = "connected";
          logger.info({ server: s.server }, "reconnected to NATS");
          break;
        case "close":
          state = "closed";
          break;
        case "error":
          logger.error({ err: s.error }, "NATS server error");
          break;
        case "ldm":
          logger.warn({ server: s.server }, "NATS server entering lame-duck mode");
          break;
        case "slowConsumer":
          logger.warn({ subject: s.sub.getSubject(), pending: s.pending }, "NATS slow consumer");
          break;
        case "staleConnection":
          logger.warn("NATS connection stale");
          break;
        default:
          break;
      }
    }
  })();
  void nc.closed().then((err) => {
    state = "closed";
    if (err) logger.error({ err }, "NATS connection closed with error");
    else logger.info("NATS connection closed");
  });

  let jsm: JetStreamManager;
  try {
    // Also verifies JetStream is enabled for this account: fail fast with that message.
    jsm = await jetstreamManager(nc);
  } catch (err) {
    await nc.close();
    if (err instanceof Error && err.name === "JetStreamNotEnabled") {
      throw new Error(`NATS at ${nc.getServer()} has no JetStream: start nats-server with -js`, { cause: err });
    }
    throw err;
  }
  const js = jetstream(nc);
  const kvm = new Kvm(js);
  let drained: Promise<void> | undefined;
  return {
    nc,
    js,
    jsm,
    kvm,
    manageJetStream: options.jetStream !== "external",
    status: () => state,
    drain: () =>
      (drained ??= nc.isClosed()
        ? Promise.resolve()
        : nc.drain().catch((err: unknown) => {
            // A connection that is down cannot drain; closing is all that is left.
            logger.warn({ err }, "NATS drain failed; closing");
            return nc.close();
          })),
  };
}

/**
 * Takes `user:password@` out of server URLs: nats.js v3 ignores it there (and would log it),
 * while Vane's Secrets hand each service one URL with its NATS user (`nats://flags:…@nats:4222`).
 */
export function splitCredentials(urls: string[]): { servers: string[]; user?: string; pass?: string } {
  let user: string | undefined;
  let pass: string | undefined;
  const servers = urls.map((raw) => {
    const m = /^([a-z]+:\/\/)?([^@/]*)@(.*)$/i.exec(raw);
    if (!m) return raw;
    const [name, password = ""] = m[2].split(/:(.*)/s, 2);
    user ??= decodeURIComponent(name);
    pass ??= decodeURIComponent(password);
    return `${m[1] ?? ""}${m[3]}`;
  });
  return { servers, user, pass };
}

/** A stream as services declare it; see {@link ensureStream}. */
export interface StreamSpec {
  name: string;
  subjects: string[];
  /** Discard messages older than this, in ms (default: keep forever). */
  maxAgeMs?: number;
  /** `Nats-Msg-Id` de-duplication window in ms (default 2 minutes; must not exceed maxAgeMs). */
  duplicateWindowMs?: number;
  /** Replicas in a cluster (default 1; 3 in production). */
  replicas?: number;
  /** Default "file". Cannot be changed on an existing stream. */
  storage?: "file" | "memory";
  /** Default "limits". Cannot be changed on an existing stream. */
  retention?: "limits" | "interest" | "workqueue";
  /** Byte and message limits (default: unlimited). */
  maxBytes?: number;
  maxMsgs?: number;
  /** What to do when a limit is reached (default "old": drop the oldest). */
  discard?: "old" | "new";
  description?: string;
  /**
   * false: someone else (NACK, an operator) owns the stream; only verify that it exists, with
   * the declared storage, retention and subjects, and never change it. Default true.
   */
  manage?: boolean;
}

/** What {@link ensureStream} did. */
export interface EnsureStreamResult {
  action: "created" | "updated" | "unchanged" | "verified";
  info: StreamInfo;
}

const MS = 1_000_000; // JetStream durations are nanoseconds

function streamConfig(spec: StreamSpec): StreamConfig {
  return {
    name: spec.name,
    subjects: [...spec.subjects],
    max_age: (spec.maxAgeMs ?? 0) * MS,
    duplicate_window: (spec.duplicateWindowMs ?? 120_000) * MS,
    num_replicas: spec.replicas ?? 1,
    storage: spec.storage === "memory" ? StorageType.Memory : StorageType.File,
    retention: spec.retention === "interest" ? RetentionPolicy.Interest : spec.retention === "workqueue" ? RetentionPolicy.Workqueue : RetentionPolicy.Limits,
    max_bytes: spec.maxBytes ?? -1,
    max_msgs: spec.maxMsgs ?? -1,
    discard: spec.discard === "new" ? DiscardPolicy.New : DiscardPolicy.Old,
    description: spec.description ?? "",
  } as StreamConfig;
}

const MANAGED_KEYS = ["max_age", "duplicate_window", "num_replicas", "max_bytes", "max_msgs", "discard", "description"] as const;

function differences(want: StreamConfig, have: StreamConfig): string[] {
  const diff: string[] = MANAGED_KEYS.filter((k) => (want[k] ?? "") !== (have[k] ?? ""));
  const a = [...want.subjects].sort().join("\n");
  const b = [...(have.subjects ?? [])].sort().join("\n");
  if (a !== b) diff.push("subjects");
  return diff;
}

function isApiError(err: unknown, code: number): boolean {
  return err instanceof JetStreamApiError && err.code === code;
}

// JetStream reports a concurrent creation with different settings as this code.
const STREAM_NAME_IN_USE = 10058;

/**
 * Creates the stream, or updates it in place when the declared settings
 * differ from the server's. Safe when several processes start at once
 * (identical concurrent creates succeed; a lost race falls through to the
 * compare-and-update path). Storage and retention cannot change on an
 * existing stream: that throws, naming the field, rather than silently
 * running with the old setting. With `manage: false` it only verifies the
 * stream (see {@link StreamSpec.manage}).
 */
export async function ensureStream(jsm: JetStreamManager, spec: StreamSpec): Promise<EnsureStreamResult> {
  const want = streamConfig(spec);
  if (spec.manage === false) return { action: "verified", info: await verifyStream(jsm, spec.name, want, `stream ${spec.name}`) };
  let info: StreamInfo;
  try {
    info = await jsm.streams.info(spec.name);
  } catch (err) {
    if (!isApiError(err, JetStreamApiCodes.StreamNotFound)) throw err;
    try {
      return { action: "created", info: await jsm.streams.add(want) };
    } catch (addErr) {
      if (!isApiError(addErr, STREAM_NAME_IN_USE)) throw addErr;
      info = await jsm.streams.info(spec.name);
    }
  }
  for (const fixed of ["storage", "retention"] as const) {
    if (info.config[fixed] !== want[fixed]) {
      throw new Error(
        `stream ${spec.name} has ${fixed} ${info.config[fixed]} but ${want[fixed]} is declared; ${fixed} cannot be changed in place (migrate the stream)`,
      );
    }
  }
  const diff = differences(want, info.config);
  if (diff.length === 0) return { action: "unchanged", info };
  const { name: _name, ...rest } = want;
  const updated = await jsm.streams.update(spec.name, { ...info.config, ...rest });
  return { action: "updated", info: updated };
}

const EXTERNAL_HINT = "it is managed externally (VANE_JETSTREAM_MANAGED=external): create it first (NACK: k8s/infra/nats/jetstream.yaml)";

/**
 * Checks an externally managed stream without changing it: it exists, and the settings the
 * service cannot work without (storage, retention, subjects) are the declared ones. Limits,
 * replicas and the dedupe window are the owner's to choose.
 */
async function verifyStream(jsm: JetStreamManager, name: string, want: Partial<StreamConfig>, what: string): Promise<StreamInfo> {
  let info: StreamInfo;
  try {
    info = await jsm.streams.info(name);
  } catch (err) {
    if (isApiError(err, JetStreamApiCodes.StreamNotFound)) throw new Error(`${what} does not exist; ${EXTERNAL_HINT}`, { cause: err });
    throw err;
  }
  for (const fixed of ["storage", "retention"] as const) {
    if (want[fixed] !== undefined && info.config[fixed] !== want[fixed]) {
      throw new Error(`${what} has ${fixed} ${info.config[fixed]} but the service needs ${want[fixed]}; fix its external definition`);
    }
  }
  const missing = (want.subjects ?? []).filter((s) => !(info.config.subjects ?? []).includes(s));
  if (missing.length > 0) throw new Error(`${what} does not carry the subjects ${missing.join(", ")}; add them to its external definition`);
  return info;
}

/** A KV bucket as services declare it; see {@link ensureKv}. */
export interface KvSpec {
  bucket: string;
  /** Values kept per key (default 1, max 64). */
  history?: number;
  /** Replicas in a cluster (default 1; 3 in production). */
  replicas?: number;
  /** Largest value in bytes (default: the server's max payload). */
  maxValueSize?: number;
  /** Default "file". Cannot be changed on an existing bucket. */
  storage?: "file" | "memory";
  /** Expire entries older than this, in ms (default never). */
  ttlMs?: number;
  description?: string;
  /**
   * false: the bucket is owned externally; only verify it exists with the declared storage and
   * at least the declared history, never change it. Default true.
   */
  manage?: boolean;
}

/**
 * Creates the KV bucket or opens the existing one, updating its history,
 * replicas, value size, TTL and description when they differ from the
 * declaration. Safe when several processes start at once. With `manage: false` it only
 * verifies the bucket (see {@link KvSpec.manage}).
 */
export async function ensureKv(kvm: Kvm, spec: KvSpec): Promise<KV> {
  const opts = {
    history: spec.history ?? 1,
    replicas: spec.replicas ?? 1,
    maxValueSize: spec.maxValueSize ?? -1,
    storage: spec.storage === "memory" ? StorageType.Memory : StorageType.File,
    ...(spec.ttlMs ? { ttl: spec.ttlMs } : {}),
    ...(spec.description ? { description: spec.description } : {}),
  };
  if (spec.manage === false) {
    const jsm = await kvm.js.jetstreamManager();
    const { config } = await verifyStream(jsm, `KV_${spec.bucket}`, { storage: opts.storage }, `KV bucket ${spec.bucket}`);
    if ((config.max_msgs_per_subject ?? 1) < opts.history) {
      throw new Error(`KV bucket ${spec.bucket} keeps ${config.max_msgs_per_subject} values per key but the service needs ${opts.history}; raise its history`);
    }
    return kvm.open(spec.bucket);
  }
  let kv: KV;
  try {
    kv = await kvm.create(spec.bucket, opts);
  } catch (err) {
    // Lost a creation race to a replica with slightly different settings: open theirs, then reconcile.
    if (!isApiError(err, STREAM_NAME_IN_USE)) throw err;
    kv = await kvm.create(spec.bucket, opts);
  }
  const jsm = await kvm.js.jetstreamManager();
  const streamName = `KV_${spec.bucket}`;
  const { config } = await jsm.streams.info(streamName);
  if (config.storage !== opts.storage) {
    throw new Error(`KV bucket ${spec.bucket} has storage ${config.storage} but ${opts.storage} is declared; storage cannot be changed in place`);
  }
  const want = {
    max_msgs_per_subject: opts.history,
    num_replicas: opts.replicas,
    max_msg_size: opts.maxValueSize,
    max_age: (spec.ttlMs ?? 0) * MS,
    description: spec.description ?? "",
  };
  const changed = (Object.keys(want) as (keyof typeof want)[]).some((k) => (config[k] ?? "") !== want[k]);
  if (changed) await jsm.streams.update(streamName, { ...config, ...want });
  return kv;
}

/** Options for {@link publishEvent}. */
export interface PublishOptions {
  /** Stable id of the event (its event id): JetStream drops re-publishes within the duplicate window. */
  msgId: string;
  /** Extra headers; trace headers are added to them. */
  headers?: MsgHdrs;
  /** How long to wait for the stream's acknowledgement, in ms (default 5 000). */
  timeoutMs?: number;
  /** Fail unless the subject is captured by this stream (guards against a missing stream binding). */
  expectStream?: string;
}

/**
 * Publishes a protobuf-encoded event to JetStream and waits for the stream's
 * acknowledgement, inside a PRODUCER span whose context travels in the
 * message headers. `ack.duplicate` is true when the stream had already
 * stored an event with this `msgId`.
 */
export async function publishEvent(js: JetStreamClient, subject: string, payload: Uint8Array, options: PublishOptions): Promise<PubAck> {
  const parent = context.active();
  const span = trace.getTracer(BUS_TRACER).startSpan(
    `send ${subject}`,
    {
      kind: SpanKind.PRODUCER,
      attributes: {
        [ATTR_MESSAGING_SYSTEM]: "nats",
        [ATTR_MESSAGING_OPERATION_TYPE]: "send",
        [ATTR_MESSAGING_OPERATION_NAME]: "send",
        [ATTR_MESSAGING_DESTINATION_NAME]: subject,
        [ATTR_MESSAGING_MESSAGE_ID]: options.msgId,
        [ATTR_MESSAGING_MESSAGE_BODY_SIZE]: payload.length,
      },
    },
    parent,
  );
  return runInSpan(span, parent, async () => {
    const hdrs = injectTraceHeaders(options.headers ?? createHeaders());
    const ack = await js.publish(subject, payload, {
      msgID: options.msgId,
      headers: hdrs,
      timeout: options.timeoutMs ?? 5_000,
      ...(options.expectStream ? { expect: { streamName: options.expectStream } } : {}),
    });
    span.setAttributes({ "messaging.nats.stream": ack.stream, "messaging.nats.stream_sequence": ack.seq, "messaging.nats.duplicate": ack.duplicate });
    return ack;
  });
}
