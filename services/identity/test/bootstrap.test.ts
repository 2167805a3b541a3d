import { mkdtemp, readFile, rm, stat, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createDatabase, type Database } from "#lib/data/db.ts";
import { migrateToLatest } from "#lib/data/migrations.ts";
import { dropSchema, testDatabaseUrl, uniqueName } from "#test/support/harness.ts";
import { hashSecret } from "../api-key-secrets.ts";
import { ensureBootstrap } from "../bootstrap.ts";
import { migrations } from "../migrations/index.ts";
import type { IdentityDatabase } from "../schema.ts";

const opened: Database<IdentityDatabase>[] = [];
let dir: string;

/** A migrated identity schema of its own. */
async function freshIdentity(): Promise<Database<IdentityDatabase>> {
  const database = await createDatabase<IdentityDatabase>({ url: testDatabaseUrl, schema: uniqueName("identity_boot") });
  opened.push(database);
  await migrateToLatest(database.db, migrations, { schema: database.schema });
  return database;
}

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), "vane-bootstrap-"));
});

afterAll(async () => {
  for (const d of opened) {
    await d.destroy();
    await dropSchema(testDatabaseUrl, d.schema);
  }
  await rm(dir, { recursive: true, force: true });
});

describe("ensureBootstrap", () => {
  it("creates the default tenant and an owner key once, then returns the saved key", async () => {
    const { db } = await freshIdentity();
    const credentialFile = join(dir, "a", ".vane", "admin-api-key");

    const first = await ensureBootstrap(db, { credentialFile });
    if (!first.created) throw new Error("expected a new tenant");
    expect(first.secret).toMatch(/^vane_personal_/);
    expect(first.adminEmail).toBe("admin@vane.local");
    expect(first.environments.map((e) => e.key)).toEqual(["development", "staging", "production"]);

    expect((await readFile(credentialFile, "utf8")).trim()).toBe(first.secret);
    expect((await stat(credentialFile)).mode & 0o777).toBe(0o600);

    const org = await db.selectFrom("organizations").selectAll().executeTakeFirstOrThrow();
    expect(org).toMatchObject({ id: first.orgId, name: "Default", slug: "default" });
    const project = await db.selectFrom("projects").selectAll().executeTakeFirstOrThrow();
    expect(project).toMatchObject({ id: first.projectId, organization_id: first.orgId, key: "default" });
    const envs = await db.selectFrom("environments").select(["id", "key", "project_id", "protected"]).orderBy("key").execute();
    expect(envs.map((e) => [e.key, e.protected])).toEqual([
      ["development", false],
      ["production", true],
      ["staging", false],
    ]);
    expect(new Set(envs.map((e) => e.project_id))).toEqual(new Set([first.projectId]));
    const owner = await db
      .selectFrom("members")
      .innerJoin("users", "users.id", "members.user_id")
      .select(["members.id", "members.role", "users.email"])
      .executeTakeFirstOrThrow();
    expect(owner).toMatchObject({ role: "owner", email: "admin@vane.local" });
    const key = await db.selectFrom("api_keys").selectAll().executeTakeFirstOrThrow();
    expect(key).toMatchObject({
      kind: "personal",
      member_id: owner.id,
      organization_id: first.orgId,
      project_id: null,
      environment_id: null,
      revoked_at: null,
    });
    expect(Buffer.compare(key.secret_hash, hashSecret(first.secret!))).toBe(0);
    expect(first.secret!.startsWith(key.prefix)).toBe(true);

    const again = await ensureBootstrap(db, { credentialFile });
    expect(again).toEqual({ created: false, secret: first.secret, orgId: first.orgId });
    expect(await db.selectFrom("organizations").select("id").execute()).toHaveLength(1);
  });

  it("uses the given admin email, and an existing user with it", async () => {
    const { db } = await freshIdentity();
    await db.insertInto("users").values({ id: "0b6f0c8e-4a57-4d38-9d1e-0d7c2b1f4a10", email: "ops@example.com" }).execute();
    const result = await ensureBootstrap(db, { adminEmail: "ops@example.com", credentialFile: join(dir, "b", "key") });
    expect(result.created).toBe(true);
    const members = await db.selectFrom("members").select(["user_id", "role"]).execute();
    expect(members).toEqual([{ user_id: "0b6f0c8e-4a57-4d38-9d1e-0d7c2b1f4a10", role: "owner" }]);
  });

  it("creates exactly one tenant when processes start together", async () => {
    const { db } = await freshIdentity();
    const credentialFile = join(dir, "c", "key");
    const results = await Promise.all(Array.from({ length: 6 }, () => ensureBootstrap(db, { credentialFile })));
    expect(results.filter((r) => r.created)).toHaveLength(1);
    const secret = results.find((r) => r.created)!.secret;
    for (const r of results) expect(r.secret).toBe(secret);
    expect(await db.selectFrom("organizations").select("id").execute()).toHaveLength(1);
    expect(await db.selectFrom("api_keys").select("id").execute()).toHaveLength(1);
  });

  it("shows no credential, with a hint, when the file is missing, revoked or foreign", async () => {
    const { db } = await freshIdentity();
    const credentialFile = join(dir, "d", "key");
    const first = await ensureBootstrap(db, { credentialFile });
    expect(first.created).toBe(true);

    await rm(credentialFile);
    const missing = await ensureBootstrap(db, { credentialFile });
    expect(missing.created).toBe(false);
    expect(missing.secret).toBeUndefined();
    expect("hint" in missing && missing.hint).toContain(credentialFile);

    await writeFile(credentialFile, "vane_personal_notakeyatall\n");
    const foreign = await ensureBootstrap(db, { credentialFile });
    expect(foreign.secret).toBeUndefined();
    expect("hint" in foreign && foreign.hint).toContain("not a valid key");

    await writeFile(credentialFile, `${first.secret}\n`);
    await db.updateTable("api_keys").set({ revoked_at: new Date() }).execute();
    const revoked = await ensureBootstrap(db, { credentialFile });
    expect(revoked.secret).toBeUndefined();
    expect(await db.selectFrom("organizations").select("id").execute()).toHaveLength(1);
  });

  it("creates only the organization and its owner when no credential file is given (production)", async () => {
    const { db } = await freshIdentity();
    {
      const result = await ensureBootstrap(db, { adminEmail: "first-owner@example.test" });
      expect(result).toMatchObject({ created: true, adminEmail: "first-owner@example.test" });
      expect(result.secret).toBeUndefined();
      expect(await db.selectFrom("api_keys").selectAll().execute()).toHaveLength(0);
      const again = await ensureBootstrap(db, { adminEmail: "someone-else@example.test" });
      expect(again.created).toBe(false);
      expect(await db.selectFrom("organizations").selectAll().execute()).toHaveLength(1);
    }
  });
});
