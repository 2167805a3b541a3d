/**
 * The audit log as people read it: who changed what and when, each entry as "field: before →
 * after" lines, flag changes revertible after a confirmation. One component for a flag's history
 * (flag page) and the project-wide feed (audit page); live updates come from live.ts, which
 * invalidates these queries on every change.
 */
import { createClient } from "@connectrpc/connect";
import { timestampDate, ValueSchema } from "@bufbuild/protobuf/wkt";
import { toJson } from "@bufbuild/protobuf";
import { useMutation, useQuery } from "@connectrpc/connect-query";
import { useQueryClient } from "@tanstack/react-query";
import { useState } from "react";
import { type AuditEntry } from "#gen/vane/flags/v1/flags_pb.js";
import { FlagService } from "#gen/vane/flags/v1/flag_service_pb.js";
import { IdentityService } from "#gen/vane/identity/v1/identity_service_pb.js";
import { describeError, transport } from "./api.ts";
import { auditDiff } from "./diff.ts";
import { href } from "./router.ts";
import { useRole } from "./role.ts";
import { organizationId } from "./session.ts";

/**
 * The version RevertAuditEntry expects, read when the person clicks (another change may have come
 * meanwhile): the flag's for a definition entry, the flag's configuration's for an environment entry.
 */
async function currentVersion(projectId: string, e: AuditEntry): Promise<bigint> {
  const got = await createClient(FlagService, transport).getFlag({ projectId, key: e.flagKey });
  if (!e.environmentId) return got.flag?.version ?? 0n;
  return got.environments.find((x) => x.environmentId === e.environmentId)?.version ?? 0n;
}

export function AuditLog({
  projectId,
  environmentId,
  flagKey = "",
  title,
  pageSize,
}: {
  projectId: string;
  /** Where links to flags lead. */
  environmentId: string;
  /** Only this flag's entries; unset, the whole project's. */
  flagKey?: string;
  title: string;
  pageSize: number;
}) {
  const qc = useQueryClient();
  const { canEdit, isPerson } = useRole();
  const [pageToken, setPageToken] = useState("");
  const entries = useQuery(FlagService.method.listAuditEntries, { projectId, flagKey, pageSize, pageToken });
  const envs = useQuery(IdentityService.method.listEnvironments, { projectId });
  const envNames = new Map((envs.data?.environments ?? []).map((e) => [e.id, e.name || e.key]));
  // Actors are user ids (or an admin key's id): people by their email. Members are organization-wide,
  // which an environment's admin key may not list, so it sees ids.
  const members = useQuery(IdentityService.method.listMembers, { organizationId: organizationId() ?? "", pageSize: 200 }, { enabled: isPerson });
  const emails = new Map((members.data?.members ?? []).map((m) => [m.userId, m.email]));
  const revert = useMutation(FlagService.method.revertAuditEntry);
  const [message, setMessage] = useState<{ kind: "error" | "ok"; text: string }>();

  const onRevert = (e: AuditEntry) => {
    if (!confirm(`Revert "${e.action}" (entry ${e.id})? Its state before the change is applied again.`)) return;
    currentVersion(projectId, e)
      .then((expectedVersion) => revert.mutateAsync({ projectId, auditEntryId: e.id, expectedVersion, reason: "console" }))
      .then(
        () => {
          setMessage({ kind: "ok", text: `Reverted entry ${e.id}.` });
          void qc.invalidateQueries();
        },
        (err: unknown) => setMessage({ kind: "error", text: describeError(err) }),
      );
  };

  return (
    <section className="card">
      <h2>{title}</h2>
      {entries.error && <p className="error">{describeError(entries.error)}</p>}
      <ol className="audit">
        {entries.data?.entries.map((e) => {
          const before = e.before ? toJson(ValueSchema, e.before) : null;
          const lines = auditDiff(before, e.after ? toJson(ValueSchema, e.after) : null);
          return (
            <li key={String(e.id)} data-testid="audit-entry">
              <div>
                <strong>{e.action}</strong>
                {!flagKey && e.flagKey && (
                  <>
                    {" "}
                    of <a href={href({ page: "flag", projectId, environmentId, flagKey: e.flagKey })}>{e.flagKey}</a>
                  </>
                )}
                {e.segmentKey && <> of segment {e.segmentKey}</>}
                {e.environmentId && <> in {envNames.get(e.environmentId) ?? e.environmentId}</>} by {emails.get(e.actor) ?? (e.actor || e.actorKind)}
                <span className="muted"> · {e.createTime ? timestampDate(e.createTime).toLocaleString() : ""}</span>
                {e.reason && <span className="muted"> · “{e.reason}”</span>}
              </div>
              {lines.length > 0 && (
                <ul className="muted">
                  {lines.map((l) => (
                    <li key={l}>{l}</li>
                  ))}
                </ul>
              )}
              {/* Only flag and flag-environment changes can be reverted; a creation has nothing before it. */}
              {canEdit && e.flagKey && before !== null && (
                <button className="link" disabled={revert.isPending} onClick={() => onRevert(e)}>
                  Revert
                </button>
              )}
            </li>
          );
        })}
      </ol>
      {entries.data && entries.data.entries.length === 0 && <p className="muted">No changes yet.</p>}
      <div className="pager">
        {pageToken && <button onClick={() => setPageToken("")}>Newest</button>}
        {entries.data?.nextPageToken && <button onClick={() => setPageToken(entries.data.nextPageToken)}>Older</button>}
      </div>
      {message && (
        <p role={message.kind === "error" ? "alert" : "status"} className={message.kind}>
          {message.text}
        </p>
      )}
    </section>
  );
}
