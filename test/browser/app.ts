/**
 * What a web page does with Vane, bundled by test/browser.test.ts and run in Chromium from another
 * origin (so every call is a real cross-origin request with CORS preflights): exchange a client
 * key, evaluate over Connect and gRPC-Web, watch over a Connect server stream, track events, and
 * resolve through the unmodified flagd web provider. Each function returns plain JSON for the test.
 */
import { Code, ConnectError, createClient, type Interceptor, type Transport } from "@connectrpc/connect";
import { createConnectTransport, createGrpcWebTransport } from "@connectrpc/connect-web";
import { FlagdWebProvider } from "@openfeature/flagd-web-provider";
import { OpenFeature, ProviderEvents } from "@openfeature/web-sdk";
import { EvaluationService } from "#gen/vane/evaluation/v1/evaluation_service_pb.js";
import { EventService } from "#gen/vane/events/v1/event_service_pb.js";
import { AuthService } from "#gen/vane/identity/v1/auth_service_pb.js";

const bearer =
  (token: string): Interceptor =>
  (next) =>
  (req) => {
    req.header.set("authorization", `Bearer ${token}`);
    return next(req);
  };

/** A failed call as the page sees it: the Connect code's name and the message. */
function failure(err: unknown): { code: string; message: string } {
  const e = ConnectError.from(err);
  return { code: Code[e.code], message: e.rawMessage };
}

let token = "";
let transport: Transport;
const watched: { version: string; changed: string[]; values: Record<string, unknown> }[] = [];
const watchAbort = new AbortController();
let watchError: { code: string; message: string } | undefined;

const api = {
  async exchange(baseUrl: string, apiKey: string) {
    const auth = createClient(AuthService, createConnectTransport({ baseUrl }));
    token = (await auth.exchangeApiKey({ apiKey })).accessToken;
    transport = createConnectTransport({ baseUrl, interceptors: [bearer(token)] });
    return { tokenLength: token.length };
  },

  async badKey(baseUrl: string) {
    try {
      await createClient(AuthService, createConnectTransport({ baseUrl })).exchangeApiKey({ apiKey: "vane_client_not-a-real-key" });
      return { code: "OK", message: "" };
    } catch (err) {
      return failure(err);
    }
  },

  async evaluateAll(context: Record<string, string>) {
    const res = await createClient(EvaluationService, transport).evaluateAll({ context });
    return {
      version: String(res.version),
      flags: Object.fromEntries(res.evaluations.map((e) => [e.flagKey, { value: e.value?.kind.value, variant: e.variant }])),
    };
  },

  /** One flag over gRPC-Web, binary, the other browser protocol. */
  async evaluateGrpcWeb(baseUrl: string, flagKey: string, context: Record<string, string>) {
    const client = createClient(EvaluationService, createGrpcWebTransport({ baseUrl, interceptors: [bearer(token)] }));
    try {
      const { evaluation } = await client.evaluate({ flagKey, context });
      return { value: evaluation?.value?.kind.value, variant: evaluation?.variant, reason: evaluation?.reason };
    } catch (err) {
      return failure(err);
    }
  },

  startWatch(context: Record<string, string>) {
    void (async () => {
      try {
        for await (const m of createClient(EvaluationService, transport).watch({ context }, { signal: watchAbort.signal })) {
          watched.push({
            version: String(m.version),
            changed: m.changedFlagKeys,
            values: Object.fromEntries(m.evaluations.map((e) => [e.flagKey, e.value?.kind.value])),
          });
        }
      } catch (err) {
        if (!watchAbort.signal.aborted) watchError = failure(err);
      }
    })();
    return true;
  },

  watched() {
    return { messages: watched, error: watchError };
  },

  stopWatch() {
    watchAbort.abort();
    return true;
  },

  async track(events: { name: string; unitKey: string; value?: number }[]) {
    try {
      const res = await createClient(EventService, transport).track({ events });
      return { accepted: res.accepted, ids: res.acceptedEventIds.length, rejected: res.rejected.map((r) => ({ index: r.index, field: r.field })) };
    } catch (err) {
      return failure(err);
    }
  },

  /** The unmodified flagd web provider against the flagd port, the selector a client API key. */
  async flagd(host: string, port: number, selector: string, flagKey: string, targetingKey: string) {
    const provider = new FlagdWebProvider({
      host,
      port,
      tls: false,
      maxRetries: 1,
      interceptors: [(next) => (req) => (req.header.set("flagd-selector", selector), next(req))],
    });
    await OpenFeature.setContext({ targetingKey });
    await OpenFeature.setProviderAndWait(provider);
    const client = OpenFeature.getClient();
    const changes: string[][] = [];
    client.addHandler(ProviderEvents.ConfigurationChanged, (e) => changes.push(e?.flagsChanged ?? []));
    const details = client.getBooleanDetails(flagKey, false);
    (globalThis as Record<string, unknown>).flagdClient = { client, changes };
    return { value: details.value, variant: details.variant, reason: details.reason, errorCode: details.errorCode ?? null };
  },

  /** The web provider's answer now (it re-resolves on configuration changes) and the events seen. */
  flagdNow(flagKey: string) {
    const { client, changes } = (globalThis as Record<string, unknown>).flagdClient as {
      client: ReturnType<typeof OpenFeature.getClient>;
      changes: string[][];
    };
    const d = client.getBooleanDetails(flagKey, false);
    return { value: d.value, variant: d.variant, reason: d.reason, changes };
  },
};

(globalThis as Record<string, unknown>).vane = api;
export type BrowserApi = typeof api;
