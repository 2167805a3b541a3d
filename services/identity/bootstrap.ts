/**
 * The first tenant of a fresh installation, for `npm start`: organization "Default" with project
 * `default` (environments development, staging, and production, protected), an owner, and that owner's personal
 * API key, whose secret is kept in a local file (mode 0600) so later starts can show it again.
 */
import { randomUUID } from "node:crypto";
import { mkdir, readFile, rename, writeFile } from "node:fs/promises";
import { dirname } from "node:path";
import { type Kysely, sql } from "kysely";
import { hashSecret, newSecret } from "./api-key-secrets.ts";
import type { IdentityDatabase } from "./schema.ts";

/** The admin's email when none is given. */
export const DEFAULT_ADMIN_EMAIL = "admin@vane.local";

/** The environments of the default project, in order; production is protected (changes need an admin). */
export const DEFAULT_ENVIRONMENTS = [
  { key: "development", name: "Development", protected: false },
  { key: "staging", name: "Staging", protected: false },
  { key: "production", name: "Production", protected: true },
] as const;

/** Options for {@link ensureBootstrap}. */
export interface BootstrapOptions {
  /** Email of the owner created with the first organization (default {@link DEFAULT_ADMIN_EMAIL}). */
  adminEmail?: string;
  /**
   * Where the owner's API key secret is written (mode 0600), and read back on later starts.
   * Without it (production) no key is created: the owner signs in through OpenID Connect.
   */
  credentialFile?: string;
}

/** What {@link ensureBootstrap} did or found. */
export type BootstrapResult =
  | {
      created: true;
      /** Absent when no credential file was given. */
      secret?: string;
      orgId: string;
      projectId: string;
      environments: { id: string; key: string }[];
      adminEmail: string;
    }
  | {
      created: false;
      /** The credential from the file, when it is still a valid, unrevoked key. */
      secret: string;
      orgId: string;
    }
  | {
      created: false;
      secret?: undefined;
      /** Why no credential can be shown, and what to do. */
      hint: string;
    };

/**
 * Creates the first tenant when identity has no organization yet, and writes the owner's API key
 * secret to `credentialFile`. Otherwise returns the secret in that file if it is still a valid key.
 * Serialised by an advisory lock, so processes starting together create exactly one tenant.
 */
export async function ensureBootstrap(db: Kysely<IdentityDatabase>, opts: BootstrapOptions): Promise<BootstrapResult> {
  const adminEmail = opts.adminEmail ?? DEFAULT_ADMIN_EMAIL;
  return db.transaction().execute(async (trx) => {
    // Per schema: test suites and prefixed local runs share one database.
    await sql`select pg_advisory_xact_lock(hashtext('vane:identity:bootstrap:' || current_schema()))`.execute(trx);
    const anyOrg = await trx.selectFrom("organizations").select("id").limit(1).executeTakeFirst();
    if (anyOrg) {
      return opts.credentialFile ? existingCredential(trx, opts.credentialFile) : { created: false, hint: "an organization exists already; nothing to do" };
    }

    const orgId = randomUUID();
    const projectId = randomUUID();
    const memberId = randomUUID();
    await trx.insertInto("organizations").values({ id: orgId, name: "Default", slug: "default" }).execute();
    // The user may exist already (signed in over OIDC before any organization existed).
    const user =
      (await trx.selectFrom("users").select("id").where("email", "=", adminEmail).executeTakeFirst()) ??
      (await trx.insertInto("users").values({ id: randomUUID(), email: adminEmail }).returning("id").executeTakeFirstOrThrow());
    await trx.insertInto("members").values({ id: memberId, organization_id: orgId, user_id: user.id, role: "owner" }).execute();
    await trx.insertInto("projects").values({ id: projectId, organization_id: orgId, key: "default", name: "Default" }).execute();
    const environments = DEFAULT_ENVIRONMENTS.map((e) => ({ id: randomUUID(), key: e.key }));
    await trx
      .insertInto("environments")
      .values(
        DEFAULT_ENVIRONMENTS.map((e, i) => ({
          id: environments[i].id,
          project_id: projectId,
          organization_id: orgId,
          key: e.key,
          name: e.name,
          protected: e.protected,
        })),
      )
      .execute();
    const environmentsCreated = { created: true as const, orgId, projectId, environments, adminEmail };
    if (!opts.credentialFile) return environmentsCreated;
    const { secret, prefix, hash } = newSecret("personal");
    await trx
      .insertInto("api_keys")
      .values({
        id: randomUUID(),
        organization_id: orgId,
        project_id: null,
        environment_id: null,
        member_id: memberId,
        kind: "personal",
        name: "bootstrap admin",
        prefix,
        secret_hash: hash,
      })
      .execute();
    // Written before commit: if writing fails nothing is created, and a file left by a failed
    // commit holds a key that never existed, which the next start detects and replaces.
    await writeCredential(opts.credentialFile, secret);
    return { ...environmentsCreated, secret };
  });
}

async function existingCredential(db: Kysely<IdentityDatabase>, file: string): Promise<BootstrapResult> {
  const startOver = "to start over with a fresh local installation, drop identity's schema and start again";
  let secret: string;
  try {
    secret = (await readFile(file, "utf8")).trim();
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== "ENOENT") throw err;
    return { created: false, hint: `an organization exists already and ${file} is missing: use an API key you created earlier; ${startOver}` };
  }
  const key = await db
    .selectFrom("api_keys")
    .innerJoin("members", "members.id", "api_keys.member_id")
    .select("api_keys.organization_id")
    .where("api_keys.secret_hash", "=", hashSecret(secret))
    .where("api_keys.revoked_at", "is", null)
    .executeTakeFirst();
  if (!key) {
    return {
      created: false,
      hint: `the credential in ${file} is not a valid key here (revoked, its member removed, or from another database): use an API key you created earlier; ${startOver}`,
    };
  }
  return { created: false, secret, orgId: key.organization_id };
}

/** Writes the secret readable by the owner only, atomically (a concurrent reader never sees half). */
async function writeCredential(file: string, secret: string): Promise<void> {
  await mkdir(dirname(file), { recursive: true, mode: 0o700 });
  const tmp = `${file}.${process.pid}.${randomUUID().slice(0, 8)}.tmp`;
  await writeFile(tmp, `${secret}\n`, { mode: 0o600, flag: "wx" });
  await rename(tmp, file);
}
