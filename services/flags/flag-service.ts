/**
 * vane.flags.v1.FlagService: flags, their targeting per environment, the audit log, and flagd
 * import/export. Every mutation is optimistic (expected_version), audited, and commits the new
 * config version of every environment it affects together with its snapshot (store.ts).
 */
import { randomUUID } from "node:crypto";
import { create } from "@bufbuild/protobuf";
import type { ServiceImpl } from "@connectrpc/connect";
import { sql } from "kysely";
import {
  ArchiveFlagResponseSchema,
  CreateFlagResponseSchema,
  ExportFlagdResponseSchema,
  FlagService,
  GetFlagResponseSchema,
  ImportFlagdResponseSchema,
  ImportMode,
  ListAuditEntriesResponseSchema,
  ListFlagsResponseSchema,
  UnarchiveFlagResponseSchema,
  UpdateFlagEnvironmentResponseSchema,
  UpdateFlagResponseSchema,
} from "#gen/vane/flags/v1/flag_service_pb.js";
import { FlagType, type Rule, RuleSchema } from "#gen/vane/flags/v1/flags_pb.js";
import { type Principal, Role } from "#lib/auth/auth.ts";
import { FlagSetError, parseFlagdJson, toFlagdJson } from "#engine";
import { failedPrecondition, invalidArgument } from "#lib/process/errors.ts";
import { decodePageToken, pageSize, takePage } from "#lib/data/pagination.ts";
import { expectVersion, type FlagsDeps, inEnvironment, inProject, mutate, requireProjectWide } from "./access.ts";
import {
  auditJson,
  conditionsFromRow,
  conditionsToJson,
  rulesFromRow,
  rulesToJson,
  toAuditEntry,
  toFlag,
  toFlagEnvironment,
  toSegment,
  typeName,
  variantsFromRow,
  variantsToJson,
} from "./convert.ts";
import type { ProjectRef } from "#lib/clients/identity-directory.ts";
import { enqueueSegmentChanged } from "./changes/events.ts";
import { toFlagSet } from "./environment-config.ts";
import { countFlags, environmentSummaries, stateFilterEnvironments, withStateFilters } from "./flag-list.ts";
import type { FlagRow } from "./schema.ts";
import { assertVariantsUnused, environmentIssues, findFlag, segmentKeys, upsertEnvironment, withRuleIds } from "./flag-writes.ts";
import { createRepublishSnapshot } from "./republish.ts";
import { createRevertAuditEntry } from "./revert.ts";
import { appendAudit, commitEnvironments, enqueueFlagChanged, environmentMetadata, environmentVersion, loadEnvironmentState, type Trx } from "./store.ts";
import { compileSegment } from "./targeting/compile.ts";
import { canonicalJson, importFlagSet, keyIssues } from "./targeting/import.ts";
import { flagdDepthIssues, MAX_JSON_DEPTH, textJsonDepth } from "./limits.ts";
import { throwIssues, validateVariants } from "./targeting/validate.ts";

const isAuditId = (part: string) => /^\d{1,18}$/.test(part);

/** Creates the FlagService implementation. */
export function createFlagService(deps: FlagsDeps): ServiceImpl<typeof FlagService> {
  const { db, directory, targets } = deps;

  /** Changes a flag's definition (archive, unarchive, update) and bumps every environment. */
  async function changeDefinition(
    scope: ProjectRef,
    p: Principal,
    environments: string[],
    key: string,
    expected: bigint,
    reason: string,
    action: "update" | "archive" | "unarchive",
    signal: AbortSignal,
    apply: (trx: Trx, row: FlagRow) => Promise<FlagRow>,
  ) {
    return mutate(deps, scope.projectId, `flag "${key}"`, signal, async (trx) => {
      const before = await findFlag(trx, scope.projectId, key, true);
      expectVersion(`flag "${key}"`, BigInt(before.version), expected);
      const after = await apply(trx, before);
      const auditId = await appendAudit(trx, scope, p, {
        flagKey: key,
        action: `flag.${action}`,
        reason,
        before: auditJson.flag(toFlag(before)),
        after: auditJson.flag(toFlag(after)),
      });
      await enqueueFlagChanged(trx, targets, scope, key, action, BigInt(after.version));
      await commitEnvironments(trx, targets, scope, environments, { changedFlagKeys: [key], auditId });
      return after;
    });
  }

  return {
    async createFlag(req, ctx) {
      const { p, caller, scope } = await inProject(deps, ctx, req.projectId, Role.EDITOR, "additive");
      throwIssues(validateVariants(req.type, req.variants));
      const environments = await directory.environments(scope.projectId, caller);
      const row = await mutate(deps, scope.projectId, `a flag with key "${req.key}"`, ctx.signal, async (trx) => {
        const row = await trx
          .insertInto("flags")
          .values({
            id: randomUUID(),
            organization_id: scope.organizationId,
            project_id: scope.projectId,
            key: req.key,
            name: req.name,
            description: req.description,
            tags: JSON.stringify(req.tags),
            owner: req.owner,
            type: typeName(req.type),
            variants: variantsToJson(req.variants),
            client_visible: req.clientVisible,
            archived: false,
            version: 1,
          })
          .returningAll()
          .executeTakeFirstOrThrow();
        const auditId = await appendAudit(trx, scope, p, {
          flagKey: req.key,
          action: "flag.create",
          reason: req.reason,
          before: null,
          after: auditJson.flag(toFlag(row)),
        });
        await enqueueFlagChanged(trx, targets, scope, req.key, "create", 1n);
        await commitEnvironments(trx, targets, scope, environments, { changedFlagKeys: [req.key], auditId });
        return row;
      });
      return create(CreateFlagResponseSchema, { flag: toFlag(row) });
    },

    async getFlag(req, ctx) {
      const { scope } = await inProject(deps, ctx, req.projectId, Role.VIEWER);
      const row = await findFlag(db, scope.projectId, req.key);
      const envs = await db.selectFrom("flag_environments").selectAll().where("flag_id", "=", row.id).orderBy("environment_id").execute();
      return create(GetFlagResponseSchema, { flag: toFlag(row), environments: envs.map((e) => toFlagEnvironment(row.key, e)) });
    },

    async listFlags(req, ctx) {
      const { scope, caller } = await inProject(deps, ctx, req.projectId, Role.VIEWER);
      await stateFilterEnvironments(req, scope.projectId, directory, caller);
      const size = pageSize(req.pageSize);
      const after = decodePageToken(req.pageToken, 1);
      let q = db.selectFrom("flags").selectAll().where("project_id", "=", scope.projectId);
      if (!req.includeArchived && !req.onlyArchived) q = q.where("archived", "=", false);
      if (req.type !== FlagType.UNSPECIFIED) q = q.where("type", "=", typeName(req.type));
      if (req.tags.length > 0) q = q.where(sql<boolean>`tags @> ${JSON.stringify(req.tags)}::jsonb`);
      if (req.query) {
        const like = `%${req.query.replace(/[\\%_]/g, (c) => `\\${c}`)}%`;
        // Key, name, or any tag (tags are a jsonb array of strings).
        const tagMatches = sql<boolean>`exists (select 1 from jsonb_array_elements_text(flags.tags) as tag where tag ilike ${like})`;
        q = q.where((eb) => eb.or([eb("key", "ilike", like), eb("name", "ilike", like), tagMatches]));
      }
      q = withStateFilters(q, req);
      const totalSize = await countFlags(q);
      if (after) q = q.where("key", ">", after[0]);
      const rows = await q
        .orderBy("key")
        .limit(size + 1)
        .execute();
      const { page, nextPageToken } = takePage(rows, size, (row) => [row.key]);
      return create(ListFlagsResponseSchema, {
        flags: page.map(toFlag),
        nextPageToken,
        environmentSummaries: await environmentSummaries(db, page),
        totalSize,
      });
    },

    async updateFlag(req, ctx) {
      const { p, caller, scope } = await inProject(deps, ctx, req.projectId, Role.EDITOR);
      const environments = await directory.environments(scope.projectId, caller);
      const row = await changeDefinition(scope, p, environments, req.key, req.expectedVersion, req.reason, "update", ctx.signal, async (trx, before) => {
        if (before.archived) throw failedPrecondition(`flag "${req.key}" is archived; unarchive it first`);
        const type = toFlag(before).type;
        throwIssues(validateVariants(type, req.variants));
        // A variant still used by an environment cannot go away.
        await assertVariantsUnused(trx, before, req.variants);
        return trx
          .updateTable("flags")
          .set({
            name: req.name,
            description: req.description,
            tags: JSON.stringify(req.tags),
            owner: req.owner,
            variants: variantsToJson(req.variants),
            client_visible: req.clientVisible,
            version: sql`version + 1`,
            updated_at: sql`now()`,
          })
          .where("id", "=", before.id)
          .returningAll()
          .executeTakeFirstOrThrow();
      });
      return create(UpdateFlagResponseSchema, { flag: toFlag(row) });
    },

    async archiveFlag(req, ctx) {
      const { p, caller, scope } = await inProject(deps, ctx, req.projectId, Role.EDITOR);
      const environments = await directory.environments(scope.projectId, caller);
      const row = await changeDefinition(scope, p, environments, req.key, req.expectedVersion, req.reason, "archive", ctx.signal, async (trx, before) => {
        if (before.archived) throw failedPrecondition(`flag "${req.key}" is already archived`);
        return trx
          .updateTable("flags")
          .set({ archived: true, version: sql`version + 1`, updated_at: sql`now()` })
          .where("id", "=", before.id)
          .returningAll()
          .executeTakeFirstOrThrow();
      });
      return create(ArchiveFlagResponseSchema, { flag: toFlag(row) });
    },

    async unarchiveFlag(req, ctx) {
      const { p, caller, scope } = await inProject(deps, ctx, req.projectId, Role.EDITOR);
      const environments = await directory.environments(scope.projectId, caller);
      const row = await changeDefinition(scope, p, environments, req.key, req.expectedVersion, req.reason, "unarchive", ctx.signal, async (trx, before) => {
        if (!before.archived) throw failedPrecondition(`flag "${req.key}" is not archived`);
        return trx
          .updateTable("flags")
          .set({ archived: false, version: sql`version + 1`, updated_at: sql`now()` })
          .where("id", "=", before.id)
          .returningAll()
          .executeTakeFirstOrThrow();
      });
      return create(UnarchiveFlagResponseSchema, { flag: toFlag(row) });
    },

    async updateFlagEnvironment(req, ctx) {
      const { p, env } = await inEnvironment(deps, ctx, req.environmentId, Role.EDITOR);
      const rules = withRuleIds(req.rules);
      const result = await mutate(deps, env.projectId, `flag "${req.flagKey}"`, ctx.signal, async (trx) => {
        const flag = await findFlag(trx, env.projectId, req.flagKey);
        if (flag.archived) throw failedPrecondition(`flag "${req.flagKey}" is archived; unarchive it first`);
        const before = await trx
          .selectFrom("flag_environments")
          .selectAll()
          .where("flag_id", "=", flag.id)
          .where("environment_id", "=", env.environmentId)
          .forUpdate()
          .executeTakeFirst();
        expectVersion(`flag "${req.flagKey}" in environment ${env.environmentId}`, before ? BigInt(before.version) : 0n, req.expectedVersion);
        throwIssues(environmentIssues(variantsFromRow(flag.variants), req.defaultVariant, rules, await segmentKeys(trx, env.projectId)));
        // Imported flagd metadata is kept.
        const after = await upsertEnvironment(trx, flag, env, before, { enabled: req.enabled, defaultVariant: req.defaultVariant, rules });
        const auditId = await appendAudit(trx, env, p, {
          environmentId: env.environmentId,
          flagKey: req.flagKey,
          action: "flag.environment.update",
          reason: req.reason,
          before: before ? auditJson.environment(toFlagEnvironment(req.flagKey, before)) : null,
          after: auditJson.environment(toFlagEnvironment(req.flagKey, after)),
        });
        const versions = await commitEnvironments(trx, targets, env, [env.environmentId], { changedFlagKeys: [req.flagKey], auditId });
        return { after, version: versions.get(env.environmentId)! };
      });
      return create(UpdateFlagEnvironmentResponseSchema, { environment: toFlagEnvironment(req.flagKey, result.after), configVersion: result.version });
    },

    async listAuditEntries(req, ctx) {
      const { scope } = await inProject(deps, ctx, req.projectId, Role.VIEWER);
      const size = pageSize(req.pageSize);
      const after = decodePageToken(req.pageToken, 1, isAuditId);
      let q = db.selectFrom("audit_entries").selectAll().where("project_id", "=", scope.projectId);
      if (req.flagKey) q = q.where("flag_key", "=", req.flagKey);
      if (req.environmentId) q = q.where("environment_id", "=", req.environmentId);
      if (req.segmentKey) q = q.where("segment_key", "=", req.segmentKey);
      if (req.actor) q = q.where("actor", "=", req.actor);
      if (after) q = q.where("id", "<", after[0]);
      const rows = await q
        .orderBy("id", "desc")
        .limit(size + 1)
        .execute();
      const { page, nextPageToken } = takePage(rows, size, (row) => [String(row.id)]);
      return create(ListAuditEntriesResponseSchema, { entries: page.map(toAuditEntry), nextPageToken });
    },

    async importFlagd(req, ctx) {
      const { p, caller, env } = await inEnvironment(deps, ctx, req.environmentId, Role.EDITOR);
      // Refused before any parser walks it: a flag's values nest at most MAX_JSON_DEPTH levels,
      // inside the document, the flags object, a flag and its variants.
      const depth = textJsonDepth(req.flagdJson);
      if (depth > MAX_JSON_DEPTH + 4)
        throw invalidArgument(`flagd_json nests ${depth} levels of objects and lists; values in a flag may nest at most ${MAX_JSON_DEPTH}`);
      let parsed;
      try {
        parsed = parseFlagdJson(req.flagdJson);
      } catch (err) {
        if (!(err instanceof FlagSetError)) throw err;
        const first = err.issues[0];
        const more = err.issues.length > 1 ? ` (and ${err.issues.length - 1} more)` : "";
        throw invalidArgument(`flagd_json: ${first ? `${first.path || "(root)"}: ${first.message}` : "invalid"}${more}`);
      }
      // Before anything is written: keys the API could not address afterwards are refused.
      throwIssues([...keyIssues(parsed), ...flagdDepthIssues(parsed)].map((i) => ({ ...i, path: `flagd_json: ${i.path}` })));
      const environments = await directory.environments(env.projectId, caller);
      const result = await mutate(deps, env.projectId, "a flag or segment of the file", ctx.signal, async (trx) => {
        // Under the project's lock, so the version cannot move before this import commits.
        if (req.expectedConfigVersion !== undefined) {
          expectVersion(`environment ${env.environmentId}`, await environmentVersion(trx, env.environmentId), req.expectedConfigVersion);
        }
        const existingSegments = new Map(
          (await trx.selectFrom("segments").selectAll().where("project_id", "=", env.projectId).execute()).map((s) => [
            s.key,
            canonicalJson(
              compileSegment({ conditions: conditionsFromRow(s.conditions), includedKeys: s.included_keys, excludedKeys: s.excluded_keys }, "segment", {
                extensions: true,
              }),
            ),
          ]),
        );
        const imported = importFlagSet(parsed, {
          segmentAllowed: (key, compiled) => !existingSegments.has(key) || existingSegments.get(key) === canonicalJson(compiled),
        });
        const created: string[] = [];
        const updated: string[] = [];
        const disabled: string[] = [];
        let lastAudit = 0n;
        let definitionsChanged = false;
        const audit = async (e: Parameters<typeof appendAudit>[3]) => (lastAudit = await appendAudit(trx, env, p, { ...e, reason: req.reason }));

        for (const s of imported.segments) {
          if (existingSegments.has(s.key)) continue;
          const row = await trx
            .insertInto("segments")
            .values({
              id: randomUUID(),
              organization_id: env.organizationId,
              project_id: env.projectId,
              key: s.key,
              name: s.evaluatorName,
              description: `imported from flagd $evaluators.${s.evaluatorName}`,
              conditions: conditionsToJson(s.conditions),
              included_keys: JSON.stringify(s.includedKeys),
              excluded_keys: JSON.stringify(s.excludedKeys),
              version: 1,
            })
            .returningAll()
            .executeTakeFirstOrThrow();
          definitionsChanged = true;
          await audit({ segmentKey: s.key, action: "segment.create", before: null, after: auditJson.segment(toSegment(row)), reason: "" });
          await enqueueSegmentChanged(trx, targets, env, p, { segmentKey: s.key, action: "create", version: 1n, auditId: lastAudit });
        }
        const segmentSet = await segmentKeys(trx, env.projectId);
        const inFile = new Set<string>();
        for (const f of imported.flags) {
          inFile.add(f.key);
          let flag = await trx.selectFrom("flags").selectAll().where("project_id", "=", env.projectId).where("key", "=", f.key).forUpdate().executeTakeFirst();
          let isNew = false;
          if (!flag) {
            throwIssues(validateVariants(f.type, f.variants, `flags.${f.key}.variants`));
            flag = await trx
              .insertInto("flags")
              .values({
                id: randomUUID(),
                organization_id: env.organizationId,
                project_id: env.projectId,
                key: f.key,
                name: f.key,
                description: "",
                tags: "[]",
                owner: "",
                type: typeName(f.type),
                variants: variantsToJson(f.variants),
                client_visible: false,
                archived: false,
                version: 1,
              })
              .returningAll()
              .executeTakeFirstOrThrow();
            isNew = true;
            definitionsChanged = true;
            created.push(f.key);
            await audit({ flagKey: f.key, action: "flag.create", before: null, after: auditJson.flag(toFlag(flag)), reason: "" });
            await enqueueFlagChanged(trx, targets, env, f.key, "create", 1n);
          } else {
            if (flag.archived) throw failedPrecondition(`flags.${f.key}: flag "${f.key}" is archived in Vane; unarchive it before importing`);
            const current = toFlag(flag);
            if (current.type !== f.type)
              throw failedPrecondition(
                `flags.${f.key}.variants: the file's variants are ${typeName(f.type)}s but flag "${f.key}" is a ${typeName(current.type)} flag`,
              );
            // Merge: the file's values win; variants only Vane knows stay (other environments may use them).
            const merged = [...current.variants];
            for (const v of f.variants) {
              const i = merged.findIndex((m) => m.key === v.key);
              if (i < 0) merged.push(v);
              else if (canonicalJson(merged[i].value) !== canonicalJson(v.value)) merged[i] = { ...merged[i], value: v.value };
            }
            if (variantsToJson(merged) !== variantsToJson(current.variants)) {
              requireProjectWide(p, `change flag "${f.key}"'s variants`);
              const before = flag;
              flag = await trx
                .updateTable("flags")
                .set({ variants: variantsToJson(merged), version: sql`version + 1`, updated_at: sql`now()` })
                .where("id", "=", flag.id)
                .returningAll()
                .executeTakeFirstOrThrow();
              definitionsChanged = true;
              await audit({ flagKey: f.key, action: "flag.update", before: auditJson.flag(toFlag(before)), after: auditJson.flag(toFlag(flag)), reason: "" });
              await enqueueFlagChanged(trx, targets, env, f.key, "update", BigInt(flag.version));
            }
          }
          const rules = withRuleIds(f.rules);
          throwIssues(environmentIssues(variantsFromRow(flag.variants), f.defaultVariant, rules, segmentSet, `flags.${f.key}.`));
          const before = await trx
            .selectFrom("flag_environments")
            .selectAll()
            .where("flag_id", "=", flag.id)
            .where("environment_id", "=", env.environmentId)
            .forUpdate()
            .executeTakeFirst();
          const same =
            before &&
            before.enabled === f.enabled &&
            before.default_variant === f.defaultVariant &&
            canonicalJson(before.metadata) === canonicalJson(f.metadata) &&
            canonicalJson(stripIds(rulesFromRow(before.rules))) === canonicalJson(stripIds(rules));
          if (same) continue;
          if (!isNew) updated.push(f.key);
          const after = await upsertEnvironment(trx, flag, env, before, { enabled: f.enabled, defaultVariant: f.defaultVariant, rules, metadata: f.metadata });
          await audit({
            environmentId: env.environmentId,
            flagKey: f.key,
            action: "flag.environment.import",
            before: before ? auditJson.environment(toFlagEnvironment(f.key, before)) : null,
            after: auditJson.environment(toFlagEnvironment(f.key, after)),
            reason: "",
          });
        }
        if (req.mode === ImportMode.REPLACE) {
          const others = await trx
            .selectFrom("flag_environments")
            .innerJoin("flags", "flags.id", "flag_environments.flag_id")
            .selectAll("flag_environments")
            .select("flags.key")
            .where("flag_environments.environment_id", "=", env.environmentId)
            .where("flag_environments.enabled", "=", true)
            .where("flags.archived", "=", false)
            .execute();
          for (const o of others) {
            if (inFile.has(o.key)) continue;
            const after = await trx
              .updateTable("flag_environments")
              .set({ enabled: false, version: sql`version + 1`, updated_at: sql`now()` })
              .where("flag_id", "=", o.flag_id)
              .where("environment_id", "=", env.environmentId)
              .returningAll()
              .executeTakeFirstOrThrow();
            disabled.push(o.key);
            await audit({
              environmentId: env.environmentId,
              flagKey: o.key,
              action: "flag.environment.import",
              before: auditJson.environment(toFlagEnvironment(o.key, o)),
              after: auditJson.environment(toFlagEnvironment(o.key, after)),
              reason: "",
            });
          }
        }
        // The file's flag-set metadata replaces the environment's (a file without any leaves it).
        const setMetadata = imported.metadata;
        const storedSet = await environmentMetadata(trx, env.environmentId);
        if (setMetadata && canonicalJson(setMetadata) !== canonicalJson(storedSet)) {
          await trx
            .insertInto("environment_metadata")
            .values({
              environment_id: env.environmentId,
              organization_id: env.organizationId,
              project_id: env.projectId,
              metadata: JSON.stringify(setMetadata),
            })
            .onConflict((oc) => oc.column("environment_id").doUpdateSet({ metadata: JSON.stringify(setMetadata), updated_at: sql`now()` }))
            .execute();
          await audit({
            environmentId: env.environmentId,
            action: "environment.metadata.import",
            before: { metadata: storedSet },
            after: { metadata: setMetadata },
            reason: "",
          });
        }
        const changed = [...created, ...updated, ...disabled];
        if (lastAudit === 0n) return { created, updated, disabled, version: await environmentVersion(trx, env.environmentId) };
        const affected = definitionsChanged ? [env.environmentId, ...environments] : [env.environmentId];
        const versions = await commitEnvironments(trx, targets, env, affected, { changedFlagKeys: changed, auditId: lastAudit });
        return { created, updated, disabled, version: versions.get(env.environmentId)! };
      });
      return create(ImportFlagdResponseSchema, {
        createdFlagKeys: result.created,
        updatedFlagKeys: result.updated,
        disabledFlagKeys: result.disabled,
        configVersion: result.version,
      });
    },

    async exportFlagd(req, ctx) {
      const { env } = await inEnvironment(deps, ctx, req.environmentId, Role.VIEWER);
      // One consistent read: the version and the state it names.
      const { state } = await db
        .transaction()
        .setIsolationLevel("repeatable read")
        .execute(async (trx) => {
          const version = await environmentVersion(trx, env.environmentId);
          return { state: await loadEnvironmentState(trx, env, env.environmentId, version, new Date()) };
        });
      const { def, skipped } = toFlagSet(state, { forFlagd: true });
      return create(ExportFlagdResponseSchema, { flagdJson: toFlagdJson(def), configVersion: state.version, skipped });
    },

    revertAuditEntry: createRevertAuditEntry(deps),
    republishSnapshot: createRepublishSnapshot(deps),
  };
}

/** Rules without their ids, to compare configurations. */
function stripIds(rules: readonly Rule[]): unknown[] {
  return JSON.parse(rulesToJson(rules.map((r) => create(RuleSchema, { ...r, id: "" }))));
}
