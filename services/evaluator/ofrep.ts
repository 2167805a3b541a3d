/**
 * The OpenFeature Remote Evaluation Protocol (OFREP) on the evaluator's main port, so the
 * ecosystem's OFREP providers (server and web, in any language) evaluate Vane flags unmodified:
 *
 *   POST /ofrep/v1/evaluate/flags/{key}   one flag      → 200 {key, value, reason, variant, metadata}
 *   POST /ofrep/v1/evaluate/flags         every flag    → 200 {flags: [...]}, ETag; If-None-Match → 304
 *
 * Credentials are Vane's: a server or client API key (`Authorization: Bearer <key>` or
 * `X-API-Key`, exchanged at identity and cached as for the flagd ports) or a key's access token.
 * The key decides the environment; a client key sees client-visible flags only. Errors have
 * OFREP's shapes: 400 {key, errorCode, errorDetails} (INVALID_CONTEXT, PARSE_ERROR, GENERAL),
 * 404 FLAG_NOT_FOUND, 401/403 with {errorDetails}, 503 with Retry-After while configuration loads.
 * A disabled flag answers 200 with reason DISABLED and no value (the caller's default applies).
 */
import type * as http from "node:http";
import type * as http2 from "node:http2";
import type { JsonObject } from "@bufbuild/protobuf";
import { Code, ConnectError } from "@connectrpc/connect";
import type { EvaluationContext, Resolution } from "#engine";
import { ApiKeyKind, type Principal, type TokenVerifier } from "#lib/auth/auth.ts";
import type { Logger } from "#lib/process/logger.ts";
import { ifNoneMatchNames } from "#lib/server/entity-tags.ts";
import { bulkTag } from "./bulk-etag.ts";
import { checkContext } from "./context-limits.ts";
import type { FlagEvaluator } from "./evaluate.ts";
import { API_KEY_SELECTOR, type FlagdKeys } from "./flagd/keys.ts";
import type { SnapshotStore } from "./snapshots/store.ts";

type Req = http.IncomingMessage | http2.Http2ServerRequest;
type Res = http.ServerResponse | http2.Http2ServerResponse;

/** The path prefix OFREP lives under. */
export const OFREP_PREFIX = "/ofrep/v1";
/** Largest request body read (a context is bounded far below this by the context limits). */
const MAX_BODY_BYTES = 1 << 20;

export interface OfrepOptions {
  store: SnapshotStore;
  evaluator: FlagEvaluator;
  verifier: () => TokenVerifier | undefined;
  /** Exchanges API keys at identity (undefined: only access tokens are accepted). */
  keys: () => FlagdKeys | undefined;
  logger: Logger;
  /**
   * The drop-in flagd mode (scripts/flagd.ts): no credentials, as flagd's OFREP port; the
   * environment is the one a `Flagd-Selector` header names, else the merged files'.
   */
  open?: (selector: string | undefined) => string | undefined;
}

/** An answer with its HTTP status. */
class Answer {
  constructor(
    readonly status: number,
    readonly body: unknown,
    readonly headers: Record<string, string> = {},
  ) {}
}

/** The OFREP request handler (`(req, res)` for paths under {@link OFREP_PREFIX}). */
export function createOfrepHandler(opts: OfrepOptions): (req: Req, res: Res) => Promise<void> {
  const log = opts.logger.child({ component: "ofrep" });

  const principal = async (req: Req): Promise<Principal> => {
    const auth = typeof req.headers.authorization === "string" ? /^Bearer\s+(\S+)\s*$/i.exec(req.headers.authorization)?.[1] : undefined;
    const apiKey = typeof req.headers["x-api-key"] === "string" ? req.headers["x-api-key"].trim() : undefined;
    const credential = apiKey || auth;
    if (!credential) throw new Answer(401, { errorDetails: "send a Vane server or client API key: Authorization: Bearer <key> (or X-API-Key)" });
    try {
      if (API_KEY_SELECTOR.test(credential)) {
        const keys = opts.keys();
        if (!keys) throw new Answer(401, { errorDetails: "this evaluator cannot check API keys (no VANE_IDENTITY_URL): send a key's access token" });
        return await keys.principal(credential);
      }
      const verifier = opts.verifier();
      if (!verifier) throw new Answer(401, { errorDetails: "this evaluator verifies no tokens" });
      return await verifier.verify(credential);
    } catch (err) {
      if (err instanceof Answer) throw err;
      const e = ConnectError.from(err);
      if (e.code === Code.Unavailable) throw new Answer(503, { errorDetails: e.rawMessage }, { "retry-after": "1" });
      if (e.code === Code.ResourceExhausted) throw new Answer(429, { errorDetails: e.rawMessage }, { "retry-after": "30" });
      throw new Answer(401, { errorDetails: `the credential was refused: ${e.rawMessage}` });
    }
  };

  const target = (p: Principal) => {
    if ((p.keyKind !== ApiKeyKind.SERVER && p.keyKind !== ApiKeyKind.CLIENT) || !p.environmentId) {
      throw new Answer(403, { errorDetails: "OFREP takes server and client API keys (they name the environment)" });
    }
    const state = opts.store.get(p.environmentId);
    if (!state) {
      if (!opts.store.initialLoadDone) throw new Answer(503, { errorDetails: "the configuration is not loaded yet; retry shortly" }, { "retry-after": "1" });
      throw new Answer(404, { errorDetails: "this key's environment has no configuration" });
    }
    return { state, clientOnly: p.keyKind === ApiKeyKind.CLIENT };
  };

  const openTarget = (req: Req, open: (selector: string | undefined) => string | undefined) => {
    const header = req.headers["flagd-selector"];
    const selector = typeof header === "string" && header.trim() !== "" ? header.trim() : undefined;
    const environmentId = open(selector);
    const state = environmentId === undefined ? undefined : opts.store.get(environmentId);
    if (!state) throw new Answer(404, { errorDetails: selector ? `no flag source matches the selector "${selector}"` : "no flags are loaded" });
    return { state, clientOnly: false };
  };
  const targetOf = async (req: Req) => (opts.open ? openTarget(req, opts.open) : target(await principal(req)));

  const context = async (req: Req, key: string | undefined): Promise<EvaluationContext> => {
    const invalid = (details: string) =>
      new Answer(
        400,
        key === undefined ? { errorCode: "INVALID_CONTEXT", errorDetails: details } : { key, errorCode: "INVALID_CONTEXT", errorDetails: details },
      );
    const chunks: Buffer[] = [];
    let size = 0;
    for await (const chunk of req as AsyncIterable<Buffer>) {
      size += chunk.length;
      if (size > MAX_BODY_BYTES) throw invalid(`the request body is larger than ${MAX_BODY_BYTES} bytes`);
      chunks.push(chunk);
    }
    const text = Buffer.concat(chunks).toString("utf8");
    if (text.trim() === "") return {};
    let body: unknown;
    try {
      body = JSON.parse(text);
    } catch {
      throw invalid('the body is not JSON: send {"context": {…}}');
    }
    if (typeof body !== "object" || body === null || Array.isArray(body)) throw invalid('the body must be a JSON object: {"context": {…}}');
    const ctx = (body as { context?: unknown }).context;
    if (ctx === undefined || ctx === null) return {};
    if (typeof ctx !== "object" || Array.isArray(ctx)) throw invalid("context must be a JSON object");
    try {
      checkContext(ctx as JsonObject);
    } catch (err) {
      throw invalid(ConnectError.from(err).rawMessage);
    }
    return ctx as EvaluationContext;
  };

  const success = (key: string, res: Resolution) => ({
    key,
    ...(res.value !== undefined ? { value: res.value } : {}),
    reason: res.reason,
    ...(res.variant !== undefined ? { variant: res.variant } : {}),
    metadata: res.metadata,
  });
  const failure = (key: string, res: Resolution) => ({ key, errorCode: res.errorCode ?? "GENERAL", errorDetails: res.errorMessage ?? "" });

  const single = async (req: Req, key: string): Promise<Answer> => {
    const { state, clientOnly } = await targetOf(req);
    const ctx = await context(req, key);
    if (clientOnly && !state.clientVisible.has(key)) return new Answer(404, { key, errorCode: "FLAG_NOT_FOUND", errorDetails: `flag "${key}" does not exist` });
    const res = opts.evaluator.evaluate(state, key, ctx, undefined, "ofrep");
    if (res.errorCode === "FLAG_NOT_FOUND") return new Answer(404, { key, errorCode: "FLAG_NOT_FOUND", errorDetails: `flag "${key}" does not exist` });
    if (res.reason === "ERROR") return new Answer(400, failure(key, res));
    return new Answer(200, success(key, res));
  };

  const bulk = async (req: Req): Promise<Answer> => {
    const { state, clientOnly } = await targetOf(req);
    const ctx = await context(req, undefined);
    // The tag (bulk-etag.ts) evaluates only the flags that read the clock: a client revalidating
    // an unchanged answer gets its 304 without the rest being evaluated.
    const etag = bulkTag(state, clientOnly, ctx, (key) => opts.evaluator.evaluate(state, key, ctx, undefined, "ofrep_all", false));
    let notModified: boolean;
    try {
      notModified = ifNoneMatchNames(header(req, "if-none-match"), etag);
    } catch (err) {
      throw new Answer(400, { errorCode: "GENERAL", errorDetails: ConnectError.from(err).rawMessage });
    }
    if (notModified) return new Answer(304, undefined, { etag });
    const flags: unknown[] = [];
    for (const [key, res] of opts.evaluator.evaluateAll(state, ctx, clientOnly, "ofrep_all"))
      flags.push(res.reason === "ERROR" ? failure(key, res) : success(key, res));
    return new Answer(200, JSON.stringify({ flags }), { etag });
  };

  return async (req, res) => {
    const path = (req.url ?? "/").split("?")[0];
    let answer: Answer;
    try {
      if (req.method !== "POST") answer = new Answer(405, { errorDetails: "OFREP evaluations are POST requests" }, { allow: "POST" });
      else if (path === `${OFREP_PREFIX}/evaluate/flags`) answer = await bulk(req);
      else if (path.startsWith(`${OFREP_PREFIX}/evaluate/flags/`)) {
        const raw = path.slice(`${OFREP_PREFIX}/evaluate/flags/`.length);
        let key: string;
        try {
          key = decodeURIComponent(raw);
        } catch {
          key = raw;
        }
        answer = key === "" || key.includes("/") ? new Answer(404, { errorDetails: `no OFREP route for ${path}` }) : await single(req, key);
      } else answer = new Answer(404, { errorDetails: `no OFREP route for ${path}` });
    } catch (err) {
      if (err instanceof Answer) answer = err;
      else {
        log.error({ err }, "OFREP request failed");
        answer = new Answer(500, { errorDetails: "internal error" });
      }
    }
    const headers: Record<string, string> = { "cache-control": "no-cache", ...answer.headers };
    if (answer.body !== undefined) headers["content-type"] = "application/json; charset=utf-8";
    res.writeHead(answer.status, headers);
    if (answer.body === undefined) res.end();
    else res.end(typeof answer.body === "string" ? answer.body : JSON.stringify(answer.body));
  };
}

function header(req: Req, name: string): string | undefined {
  const v = req.headers[name];
  return Array.isArray(v) ? v.join(", ") : v;
}
