/**
 * The steady mixed load of a chaos run, each kind in its own loop that never stops on an error:
 * flag edits (flags), evaluations of an experiment flag and of the edited flag (evaluator, which
 * publishes exposures), watch streams that reconnect (evaluator), and tracked events retried with
 * their own ids until accepted (collector). Everything a check needs later is recorded here.
 */
import { Code, ConnectError, createClient, type Client, type Interceptor } from "@connectrpc/connect";
import { createConnectTransport } from "@connectrpc/connect-node";
import type { DescService } from "@bufbuild/protobuf";
import { EvaluationService } from "#gen/vane/evaluation/v1/evaluation_service_pb.js";
import { EventService } from "#gen/vane/events/v1/event_service_pb.js";
import { FlagService } from "#gen/vane/flags/v1/flag_service_pb.js";

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** A bearer token that something refreshes in the background. */
export interface TokenSource {
  current(): string;
}

export function client<S extends DescService>(service: S, baseUrl: string, token?: TokenSource): Client<S> {
  const auth: Interceptor = (next) => (req) => {
    if (token) req.header.set("authorization", `Bearer ${token.current()}`);
    return next(req);
  };
  return createClient(service, createConnectTransport({ baseUrl, httpVersion: "1.1", useBinaryFormat: true, interceptors: [auth] }));
}

/** Failures by service and Connect code name, with when each happened (for the evaluator's check). */
export class Failures {
  readonly counts = new Map<string, number>();
  readonly evaluations: number[] = [];
  note(what: string, err: unknown, at = Date.now()): void {
    const code = Code[ConnectError.from(err).code];
    const key = `${what} ${code}`;
    this.counts.set(key, (this.counts.get(key) ?? 0) + 1);
    if (what === "evaluate") this.evaluations.push(at);
  }
}

export interface LoadTargets {
  flagsUrl: string;
  evaluatorUrl: string;
  collectorUrl: string;
  projectId: string;
  environmentId: string;
  /** A flag with variants v0…v7 that the edit loop keeps changing. */
  dialFlag: string;
  /** The flag a running experiment is on (evaluations publish exposures). */
  experimentFlag: string;
  /** The tracked event name of the experiment's metric. */
  eventName: string;
  admin: TokenSource;
  server: TokenSource;
}

export interface LoadRecord {
  evaluations: number;
  edits: number;
  /** Each watcher's versions in the order received (across reconnects). */
  watched: { versions: bigint[]; dial: string[] }[];
  /** Event ids the collector accepted. */
  accepted: Set<string>;
  /** Every event id ever sent (accepted or not). */
  sent: Set<string>;
  failures: Failures;
}

const CALL_TIMEOUT_MS = 5_000;

/** Starts every loop; `stop()` ends them and resolves with what they recorded. */
export function startLoad(
  t: LoadTargets,
  options: { watchers: number; evaluators: number },
): { record: LoadRecord; quiesce(): Promise<void>; stop(): Promise<LoadRecord> } {
  const record: LoadRecord = {
    evaluations: 0,
    edits: 0,
    watched: [],
    accepted: new Set(),
    sent: new Set(),
    failures: new Failures(),
  };
  const abort = new AbortController();
  const quiet = new AbortController();
  const running = () => !abort.signal.aborted;
  const writing = () => !quiet.signal.aborted;
  const flags = client(FlagService, t.flagsUrl, t.admin);
  const evaluation = client(EvaluationService, t.evaluatorUrl, t.server);
  const events = client(EventService, t.collectorUrl, t.server);
  const units: string[] = [];

  const editLoop = async () => {
    for (let n = 1; writing(); n++) {
      try {
        const { environments } = await flags.getFlag({ projectId: t.projectId, key: t.dialFlag }, { timeoutMs: CALL_TIMEOUT_MS });
        const current = environments.find((e) => e.environmentId === t.environmentId);
        await flags.updateFlagEnvironment(
          {
            environmentId: t.environmentId,
            flagKey: t.dialFlag,
            expectedVersion: current?.version ?? 0n,
            enabled: true,
            defaultVariant: `v${n % 8}`,
            reason: "chaos",
          },
          { timeoutMs: CALL_TIMEOUT_MS },
        );
        record.edits++;
      } catch (err) {
        record.failures.note("edit", err);
      }
      await sleep(250);
    }
  };

  const evaluateLoop = async (worker: number) => {
    for (let i = 0; running(); i++) {
      const unit = `unit-${worker}-${i % 400}`;
      try {
        await evaluation.evaluate({ flagKey: t.experimentFlag, context: { targetingKey: unit } }, { timeoutMs: CALL_TIMEOUT_MS });
        await evaluation.evaluate({ flagKey: t.dialFlag, context: { targetingKey: unit } }, { timeoutMs: CALL_TIMEOUT_MS });
        record.evaluations += 2;
        if (i < 400) units.push(unit);
      } catch (err) {
        record.failures.note("evaluate", err);
        await sleep(50);
      }
      await sleep(20);
    }
  };

  const watchLoop = async (w: number) => {
    const seen: LoadRecord["watched"][number] = { versions: [], dial: [] };
    record.watched.push(seen);
    while (running()) {
      try {
        for await (const res of evaluation.watch({ context: { targetingKey: `watcher-${w}` } }, { signal: abort.signal })) {
          seen.versions.push(res.version);
          const dial = res.evaluations.find((e) => e.flagKey === t.dialFlag);
          if (dial) seen.dial.push(dial.variant);
        }
      } catch (err) {
        if (running()) record.failures.note("watch", err);
      }
      if (running()) await sleep(200);
    }
  };

  const trackLoop = async () => {
    for (let batch = 0; writing(); batch++) {
      if (units.length === 0) {
        await sleep(100);
        continue;
      }
      const pending = Array.from({ length: 20 }, (_, i) => ({
        eventId: `chaos-${batch}-${i}`,
        name: t.eventName,
        unitKey: units[(batch * 20 + i) % units.length],
        value: 1,
      }));
      for (const e of pending) record.sent.add(e.eventId);
      // The same ids until every one is accepted: a retry after a lost answer must not count twice.
      let left = pending;
      while (left.length > 0) {
        try {
          const r = await events.track({ events: left }, { timeoutMs: CALL_TIMEOUT_MS });
          for (const id of r.acceptedEventIds) record.accepted.add(id);
          if (r.rejected.length > 0) throw new Error(`collector rejected chaos events: ${JSON.stringify(r.rejected)}`);
          left = left.filter((e) => !record.accepted.has(e.eventId));
        } catch (err) {
          if (err instanceof Error && !(err instanceof ConnectError) && err.message.startsWith("collector rejected")) throw err;
          record.failures.note("track", err);
          await sleep(200);
        }
      }
      await sleep(100);
    }
  };

  const writers = [editLoop(), trackLoop()];
  const loops = [
    ...writers,
    ...Array.from({ length: options.evaluators }, (_, i) => evaluateLoop(i)),
    ...Array.from({ length: options.watchers }, (_, i) => watchLoop(i)),
  ];
  return {
    record,
    /** Ends edits and tracking (a batch in flight is retried until accepted); reads go on. */
    async quiesce() {
      quiet.abort();
      await Promise.all(writers);
    },
    async stop() {
      quiet.abort();
      abort.abort();
      await Promise.all(loops);
      return record;
    },
  };
}
