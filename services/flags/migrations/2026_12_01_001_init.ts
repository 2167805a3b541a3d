import { type Kysely, sql } from "kysely";

// Frozen: never edit a migration that has shipped; add a new one.
export async function up(db: Kysely<any>): Promise<void> {
  await db.schema
    .createTable("flags")
    .addColumn("id", "uuid", (c) => c.primaryKey())
    .addColumn("organization_id", "uuid", (c) => c.notNull())
    .addColumn("project_id", "uuid", (c) => c.notNull())
    .addColumn("key", "text", (c) => c.notNull())
    .addColumn("name", "text", (c) => c.notNull())
    .addColumn("description", "text", (c) => c.notNull().defaultTo(""))
    .addColumn("tags", "jsonb", (c) => c.notNull().defaultTo(sql`'[]'::jsonb`))
    .addColumn("owner", "text", (c) => c.notNull().defaultTo(""))
    .addColumn("type", "text", (c) => c.notNull().check(sql`type in ('boolean', 'string', 'number', 'object')`))
    .addColumn("variants", "jsonb", (c) => c.notNull())
    .addColumn("client_visible", "boolean", (c) => c.notNull().defaultTo(false))
    .addColumn("archived", "boolean", (c) => c.notNull().defaultTo(false))
    .addColumn("version", "bigint", (c) => c.notNull())
    .addColumn("created_at", sql`timestamptz(3)`, (c) => c.notNull().defaultTo(sql`now()`))
    .addColumn("updated_at", sql`timestamptz(3)`, (c) => c.notNull().defaultTo(sql`now()`))
    .addUniqueConstraint("flags_project_key", ["project_id", "key"])
    .execute();
  await db.schema.createIndex("flags_tags").on("flags").using("gin").column("tags").execute();

  await db.schema
    .createTable("flag_environments")
    .addColumn("flag_id", "uuid", (c) => c.notNull().references("flags.id").onDelete("cascade"))
    .addColumn("environment_id", "uuid", (c) => c.notNull())
    .addColumn("organization_id", "uuid", (c) => c.notNull())
    .addColumn("project_id", "uuid", (c) => c.notNull())
    .addColumn("enabled", "boolean", (c) => c.notNull())
    .addColumn("default_variant", "text", (c) => c.notNull())
    .addColumn("rules", "jsonb", (c) => c.notNull())
    .addColumn("version", "bigint", (c) => c.notNull())
    .addColumn("updated_at", sql`timestamptz(3)`, (c) => c.notNull().defaultTo(sql`now()`))
    .addPrimaryKeyConstraint("flag_environments_pk", ["flag_id", "environment_id"])
    .execute();
  await db.schema.createIndex("flag_environments_env").on("flag_environments").column("environment_id").execute();
  await db.schema.createIndex("flag_environments_rules").on("flag_environments").using("gin").column("rules").execute();

  await db.schema
    .createTable("segments")
    .addColumn("id", "uuid", (c) => c.primaryKey())
    .addColumn("organization_id", "uuid", (c) => c.notNull())
    .addColumn("project_id", "uuid", (c) => c.notNull())
    .addColumn("key", "text", (c) => c.notNull())
    .addColumn("name", "text", (c) => c.notNull())
    .addColumn("description", "text", (c) => c.notNull().defaultTo(""))
    .addColumn("conditions", "jsonb", (c) => c.notNull())
    .addColumn("included_keys", "jsonb", (c) => c.notNull())
    .addColumn("excluded_keys", "jsonb", (c) => c.notNull())
    .addColumn("version", "bigint", (c) => c.notNull())
    .addColumn("created_at", sql`timestamptz(3)`, (c) => c.notNull().defaultTo(sql`now()`))
    .addColumn("updated_at", sql`timestamptz(3)`, (c) => c.notNull().defaultTo(sql`now()`))
    .addUniqueConstraint("segments_project_key", ["project_id", "key"])
    .execute();

  await db.schema
    .createTable("environment_versions")
    .addColumn("environment_id", "uuid", (c) => c.primaryKey())
    .addColumn("organization_id", "uuid", (c) => c.notNull())
    .addColumn("project_id", "uuid", (c) => c.notNull())
    .addColumn("version", "bigint", (c) => c.notNull())
    .addColumn("updated_at", sql`timestamptz(3)`, (c) => c.notNull().defaultTo(sql`now()`))
    .execute();
  await db.schema.createIndex("environment_versions_project").on("environment_versions").column("project_id").execute();

  await db.schema
    .createTable("audit_entries")
    .addColumn("id", "bigserial", (c) => c.primaryKey())
    .addColumn("organization_id", "uuid", (c) => c.notNull())
    .addColumn("project_id", "uuid", (c) => c.notNull())
    .addColumn("environment_id", "uuid")
    .addColumn("flag_key", "text")
    .addColumn("segment_key", "text")
    .addColumn("action", "text", (c) => c.notNull())
    .addColumn("actor", "text", (c) => c.notNull())
    .addColumn("actor_kind", "text", (c) => c.notNull())
    .addColumn("reason", "text", (c) => c.notNull())
    .addColumn("before", "jsonb", (c) => c.notNull())
    .addColumn("after", "jsonb", (c) => c.notNull())
    .addColumn("created_at", sql`timestamptz(3)`, (c) => c.notNull().defaultTo(sql`now()`))
    .execute();
  await db.schema.createIndex("audit_entries_project").on("audit_entries").columns(["project_id", "id"]).execute();
  await db.schema.createIndex("audit_entries_flag").on("audit_entries").columns(["project_id", "flag_key", "id"]).execute();
  await db.schema.createIndex("audit_entries_environment").on("audit_entries").columns(["environment_id", "id"]).execute();
  await db.schema.createIndex("audit_entries_actor").on("audit_entries").columns(["project_id", "actor", "id"]).execute();
  // The audit log is append-only: no code path updates or deletes it, and the database refuses too.
  await sql`
    create function audit_entries_append_only() returns trigger language plpgsql as $$
    begin
      raise exception 'the audit log is append-only' using errcode = 'insufficient_privilege';
    end $$`.execute(db);
  await sql`
    create trigger audit_entries_append_only before update or delete on audit_entries
    for each row execute function audit_entries_append_only()`.execute(db);
  await sql`
    create trigger audit_entries_no_truncate before truncate on audit_entries
    for each statement execute function audit_entries_append_only()`.execute(db);

  await db.schema
    .createTable("outbox")
    .addColumn("id", "bigserial", (c) => c.primaryKey())
    .addColumn("kind", "text", (c) => c.notNull().check(sql`kind in ('kv', 'event')`))
    .addColumn("target", "text", (c) => c.notNull())
    .addColumn("payload", "bytea", (c) => c.notNull())
    .addColumn("msg_id", "text", (c) => c.notNull())
    .addColumn("headers", "jsonb", (c) => c.notNull().defaultTo(sql`'{}'::jsonb`))
    .addColumn("created_at", sql`timestamptz(3)`, (c) => c.notNull().defaultTo(sql`now()`))
    .addColumn("published_at", "timestamptz")
    .execute();
  await sql`create index outbox_unpublished on outbox (id) where published_at is null`.execute(db);
}

export async function down(db: Kysely<any>): Promise<void> {
  for (const t of ["outbox", "audit_entries", "environment_versions", "segments", "flag_environments", "flags"]) {
    await db.schema.dropTable(t).ifExists().execute();
  }
  await sql`drop function if exists audit_entries_append_only()`.execute(db);
}
