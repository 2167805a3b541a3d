import type { Kysely } from "kysely";

// A revoked signing key (compromised) is no longer published at all, unlike a retired one, which
// stays in the JWKS until its tokens expire. The row is kept for the record.
// Frozen: never edit a migration that has shipped; add a new one.
export async function up(db: Kysely<any>): Promise<void> {
  await db.schema.alterTable("signing_keys").addColumn("revoked_at", "timestamptz").execute();
}

export async function down(db: Kysely<any>): Promise<void> {
  await db.schema.alterTable("signing_keys").dropColumn("revoked_at").execute();
}
