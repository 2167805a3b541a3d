/** The identity directory's cache: trusted for its TTL only, so deleted environments stop resolving. */
import { Code } from "@connectrpc/connect";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { principalFromClaims } from "#lib/auth/auth.ts";
import { createIdentityDirectory } from "#lib/clients/identity-directory.ts";
import { type FlagsHarness, startFlags, type Tenant } from "./harness.ts";

describe("identity directory cache", () => {
  let h: FlagsHarness;
  let t: Tenant;
  beforeAll(async () => {
    h = await startFlags();
    t = await h.seedTenant();
  });
  afterAll(() => h?.close());

  it("forgets an environment after the TTL, so a deleted one stops resolving", async () => {
    const directory = createIdentityDirectory({ baseUrl: `http://127.0.0.1:${h.running.port}`, cacheTtlMs: 300 });
    const caller = {
      principal: principalFromClaims({ sub: t.ownerUserId, org: t.orgId, role: "owner", kind: "user" }),
      authorization: `Bearer ${t.ownerToken}`,
    };
    expect(await directory.environment(t.stagingId, caller)).toMatchObject({ environmentId: t.stagingId, projectId: t.projectId });
    await h.identity.database.db.deleteFrom("environments").where("id", "=", t.stagingId).execute();
    // Within the TTL the cached mapping still answers (no call to identity)…
    expect(await directory.environment(t.stagingId, caller)).toMatchObject({ environmentId: t.stagingId });
    await new Promise((r) => setTimeout(r, 350));
    // …after it, identity is asked again and says it is gone.
    await expect(directory.environment(t.stagingId, caller)).rejects.toMatchObject({ code: Code.NotFound });
    expect(await directory.environment(t.environmentId, caller)).toMatchObject({ environmentId: t.environmentId });
  });
});
