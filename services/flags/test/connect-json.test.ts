/** FlagService over Connect's JSON protocol on plain HTTP/1.1, as a browser or curl would call it. */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type FlagsHarness, startFlags, type Tenant } from "./harness.ts";

describe("FlagService over Connect JSON (HTTP/1.1)", () => {
  let h: FlagsHarness;
  let t: Tenant;
  beforeAll(async () => {
    h = await startFlags();
    t = await h.seedTenant();
  });
  afterAll(() => h?.close());

  const call = async (method: string, body: unknown) => {
    const res = await fetch(`http://127.0.0.1:${h.running.port}/vane.flags.v1.FlagService/${method}`, {
      method: "POST",
      headers: { "content-type": "application/json", authorization: `Bearer ${t.ownerToken}` },
      body: JSON.stringify(body),
    });
    return { status: res.status, contentType: res.headers.get("content-type"), json: (await res.json()) as Record<string, any> };
  };
  const variants = [
    { key: "on", value: true },
    { key: "off", value: false },
  ];

  it("creates a flag", async () => {
    const res = await call("CreateFlag", { projectId: t.projectId, key: "json-flag", name: "JSON", type: "FLAG_TYPE_BOOLEAN", variants, tags: ["api"] });
    expect(res.status).toBe(200);
    expect(res.contentType).toBe("application/json");
    expect(res.json.flag).toMatchObject({ key: "json-flag", name: "JSON", type: "FLAG_TYPE_BOOLEAN", version: "1", tags: ["api"], variants });
  });

  it("reports validation errors as invalid_argument naming the field", async () => {
    const contract = await call("CreateFlag", { projectId: t.projectId, key: "bad key!", name: "x", type: "FLAG_TYPE_BOOLEAN", variants });
    expect(contract.status).toBe(400);
    expect(contract.json.code).toBe("invalid_argument");
    expect(contract.json.message).toMatch(/^key: /);

    const typed = await call("CreateFlag", {
      projectId: t.projectId,
      key: "typed",
      name: "x",
      type: "FLAG_TYPE_BOOLEAN",
      variants: [{ key: "on", value: "yes" }],
    });
    expect(typed.status).toBe(400);
    expect(typed.json.code).toBe("invalid_argument");
    expect(typed.json.message).toMatch(/^variants\[0\]\.value: /);
  });

  it("reports a stale write as aborted, with the current version", async () => {
    expect((await call("UpdateFlag", { projectId: t.projectId, key: "json-flag", expectedVersion: "1", name: "JSON 2", variants })).status).toBe(200);
    const stale = await call("UpdateFlag", { projectId: t.projectId, key: "json-flag", expectedVersion: "1", name: "stale", variants });
    expect(stale.status).toBe(409);
    expect(stale.json.code).toBe("aborted");
    expect(stale.json.message).toContain("version 2");
    expect(stale.json.details).toEqual([expect.objectContaining({ type: "vane.flags.v1.VersionConflict" })]);
  });
});
