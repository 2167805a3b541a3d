/**
 * The flagd ports authenticated by default (VANE_FLAGD_AUTH=key): an unmodified OpenFeature flagd
 * provider sets its selector to a Vane API key, and gets that key's environment; an environment id
 * alone, a wrong, revoked or admin key gets nothing. OFREP on the main port takes the same keys.
 * Identity, flags and the evaluator are real.
 */
import { fromJson } from "@bufbuild/protobuf";
import { ValueSchema } from "@bufbuild/protobuf/wkt";
import { FlagdProvider } from "@openfeature/flagd-provider";
import { OpenFeature } from "@openfeature/server-sdk";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { FlagService } from "#gen/vane/flags/v1/flag_service_pb.js";
import { FlagType } from "#gen/vane/flags/v1/flags_pb.js";
import { ApiKeyKind } from "#gen/vane/identity/v1/identity_pb.js";
import { IdentityService } from "#gen/vane/identity/v1/identity_service_pb.js";
import { createTokenVerifier } from "#lib/auth/auth.ts";
import { eventually } from "#test/support/harness.ts";
import { type FlagsHarness, startFlags, type Tenant } from "../services/flags/test/harness.ts";
import { type EvaluatorHarness, startEvaluator } from "../services/evaluator/test/harness.ts";

const variants = [
  { key: "on", value: fromJson(ValueSchema, true) },
  { key: "off", value: fromJson(ValueSchema, false) },
];

describe("flagd ports with API keys as selectors (the default)", () => {
  let h: FlagsHarness;
  let ev: EvaluatorHarness;
  let t: Tenant;
  let other: Tenant;
  const secrets: Record<string, string> = {};

  beforeAll(async () => {
    h = await startFlags();
    ev = await startEvaluator({
      bucket: h.bucket,
      fixtures: false,
      env: { VANE_FLAGD_AUTH: "key" },
      identityUrl: () => `http://127.0.0.1:${h.running.port}`,
      verifier: createTokenVerifier({ issuer: "vane", keys: h.identity.keys.keySet }),
    });
    t = await h.seedTenant();
    other = await h.seedTenant();
    for (const tenant of [t, other]) {
      const flags = h.client(FlagService, tenant.ownerToken);
      await flags.createFlag({ projectId: tenant.projectId, key: "secret-flag", name: "s", type: FlagType.BOOLEAN, variants });
      await flags.createFlag({ projectId: tenant.projectId, key: "public-flag", name: "p", type: FlagType.BOOLEAN, variants, clientVisible: true });
      for (const key of ["secret-flag", "public-flag"])
        await flags.updateFlagEnvironment({ environmentId: tenant.environmentId, flagKey: key, enabled: true, defaultVariant: "on" });
    }
    const identity = h.client(IdentityService, t.ownerToken);
    for (const [name, kind] of [
      ["server", ApiKeyKind.SERVER],
      ["client", ApiKeyKind.CLIENT],
      ["admin", ApiKeyKind.ADMIN],
      ["revoked", ApiKeyKind.SERVER],
    ] as const) {
      const created = await identity.createApiKey({ environmentId: t.environmentId, kind, name });
      secrets[name] = created.secret;
      if (name === "revoked") await identity.revokeApiKey({ id: created.apiKey!.id });
    }
    await eventually(() => ev.module.store.get(t.environmentId) && ev.module.store.get(other.environmentId), 10_000, "both environments loaded");
  });
  afterAll(async () => {
    await OpenFeature.close();
    await ev?.close();
    await h?.close();
  });

  const resolve = async (flagKey: string, headers: Record<string, string>) => {
    const res = await fetch(`http://127.0.0.1:${ev.flagd.evaluationPort}/flagd.evaluation.v1.Service/ResolveBoolean`, {
      method: "POST",
      headers: { "content-type": "application/json", ...headers },
      body: JSON.stringify({ flagKey, context: { targetingKey: "u1" } }),
    });
    return { status: res.status, body: (await res.json()) as { value?: boolean; code?: string; message?: string } };
  };

  it("serves an unmodified flagd provider whose selector is a server key, over rpc and in-process", async () => {
    await OpenFeature.setProviderAndWait(
      "rpc",
      new FlagdProvider({
        host: "127.0.0.1",
        port: ev.flagd.evaluationPort!,
        resolverType: "rpc",
        selector: secrets.server,
        cache: "disabled",
        deadlineMs: 5_000,
      }),
    );
    await OpenFeature.setProviderAndWait(
      "in-process",
      new FlagdProvider({ host: "127.0.0.1", port: ev.flagd.syncPort!, resolverType: "in-process", selector: secrets.server, deadlineMs: 5_000 }),
    );
    for (const name of ["rpc", "in-process"]) {
      const details = await OpenFeature.getClient(name).getBooleanDetails("secret-flag", false, { targetingKey: "u1" });
      expect(details, name).toMatchObject({ value: true, variant: "on" });
      expect(details.errorCode, name).toBeUndefined();
    }
  });

  it("refuses calls without a credential, with an environment id, a wrong or revoked key (UNAUTHENTICATED) and an admin key (PERMISSION_DENIED)", async () => {
    const cases: [string, Record<string, string>, number, string][] = [
      ["no selector", {}, 401, "unauthenticated"],
      ["an environment id", { "flagd-selector": t.environmentId }, 401, "unauthenticated"],
      ["environment=<id>", { "flagd-selector": `environment=${t.environmentId}` }, 401, "unauthenticated"],
      ["a mistyped key", { "flagd-selector": `${secrets.server.slice(0, -2)}xx` }, 401, "unauthenticated"],
      ["a revoked key", { "flagd-selector": secrets.revoked }, 401, "unauthenticated"],
      ["an admin key", { "flagd-selector": secrets.admin }, 403, "permission_denied"],
    ];
    for (const [what, headers, status, code] of cases) {
      const r = await resolve("secret-flag", headers);
      expect({ what, status: r.status, code: r.body.code }).toEqual({ what, status, code });
    }
    expect((await resolve("secret-flag", {})).body.message).toMatch(/selector to a Vane server or client API key/);
  });

  it("gives a client key the client-visible flags of its own environment only", async () => {
    expect((await resolve("public-flag", { "flagd-selector": secrets.client })).body.value).toBe(true);
    expect((await resolve("secret-flag", { "flagd-selector": secrets.client })).body.code).toBe("not_found");
    // A key and a selector naming another environment cannot be combined.
    const both = await resolve("public-flag", { "flagd-selector": secrets.server, authorization: "Bearer x" });
    expect(both.status).toBe(401);
  });

  it("never serves another organization's environment to a key", async () => {
    const sync = await fetch(`http://127.0.0.1:${ev.flagd.syncPort}/flagd.sync.v1.FlagSyncService/FetchAllFlags`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ selector: secrets.server }),
    });
    const body = (await sync.json()) as { flagConfiguration: string };
    expect(JSON.parse(body.flagConfiguration).metadata.flagSetId).toBe(t.environmentId);
    const asOther = await fetch(`http://127.0.0.1:${ev.flagd.syncPort}/flagd.sync.v1.FlagSyncService/FetchAllFlags`, {
      method: "POST",
      headers: { "content-type": "application/json", "flagd-selector": other.environmentId },
      body: "{}",
    });
    expect(asOther.status).toBe(401);
  });

  it("serves OFREP to an API key in Authorization or X-API-Key, with the same refusals", async () => {
    const ofrep = (headers: Record<string, string>) =>
      fetch(`${ev.baseUrl}/ofrep/v1/evaluate/flags/secret-flag`, { method: "POST", headers: { "content-type": "application/json", ...headers }, body: "{}" });
    for (const headers of [{ authorization: `Bearer ${secrets.server}` }, { "x-api-key": secrets.server }] as Record<string, string>[]) {
      const r = await ofrep(headers);
      expect(r.status).toBe(200);
      expect(await r.json()).toMatchObject({ key: "secret-flag", value: true, variant: "on" });
    }
    expect((await ofrep({ "x-api-key": secrets.revoked })).status).toBe(401);
    expect((await ofrep({ "x-api-key": `${secrets.server.slice(0, -2)}xx` })).status).toBe(401);
    expect((await ofrep({ "x-api-key": secrets.admin })).status).toBe(403);
    expect((await ofrep({ "x-api-key": secrets.client })).status).toBe(404); // not client-visible
  });
});
