/**
 * One flag in one environment (a tab per environment): on/off, default variant, a percentage
 * rollout whose weights always sum to 100, other rules kept as they are, a review of the changes
 * before saving, archive/restore, the evaluation debugger with the rule that matched and why, and
 * the flag's history. A viewer sees the same page with every control that changes something hidden
 * or disabled.
 */
import { create, toJson, type JsonObject } from "@bufbuild/protobuf";
import { ValueSchema } from "@bufbuild/protobuf/wkt";
import { useMutation, useQuery } from "@connectrpc/connect-query";
import { useQueryClient } from "@tanstack/react-query";
import { useEffect, useMemo, useState } from "react";
import { EvaluationService, Reason } from "#gen/vane/evaluation/v1/evaluation_service_pb.js";
import { FlagService } from "#gen/vane/flags/v1/flag_service_pb.js";
import { type FlagEnvironment, type Rule, RuleSchema } from "#gen/vane/flags/v1/flags_pb.js";
import { IdentityService } from "#gen/vane/identity/v1/identity_service_pb.js";
import { describeError } from "../api.ts";
import { AuditLog } from "../audit-log.tsx";
import { describeChanges, type EnvState } from "../diff.ts";
import { useRole } from "../role.ts";
import { byName, href, type Route } from "../router.ts";
import { setShare, total, type Share } from "../rollout.ts";

/** The first rule when it is an unconditional rollout (what the rollout editor edits). */
function rolloutOf(env: FlagEnvironment | undefined): Share[] | undefined {
  const r = env?.rules[0];
  if (!r || r.conditions.length > 0 || r.outcome?.kind.case !== "rollout") return undefined;
  const variants = r.outcome.kind.value.variants;
  const sum = variants.reduce((a, v) => a + v.weight, 0) || 1;
  return variants.map((v) => ({ variant: v.variant, percent: Math.round((v.weight * 100) / sum) }));
}

function Debugger({ flagKey, environmentId }: { flagKey: string; environmentId: string }) {
  const [text, setText] = useState('{\n  "targetingKey": "user-1"\n}');
  const [problem, setProblem] = useState<string>();
  const evaluate = useMutation(EvaluationService.method.evaluate);
  const e = evaluate.data?.evaluation;
  return (
    <section className="card">
      <h2>Try it</h2>
      <label htmlFor="ctx">Evaluation context (JSON)</label>
      <textarea id="ctx" rows={5} value={text} onChange={(ev) => setText(ev.target.value)} spellCheck={false} />
      <button
        onClick={() => {
          setProblem(undefined);
          let context: JsonObject;
          try {
            context = JSON.parse(text) as JsonObject;
            if (typeof context !== "object" || context === null || Array.isArray(context)) throw new Error("the context must be a JSON object");
          } catch (err) {
            return setProblem(`Not a JSON object: ${(err as Error).message}`);
          }
          evaluate.mutate({ flagKey, environmentId, context, explain: true }, { onError: (err) => setProblem(describeError(err)) });
        }}
      >
        Evaluate
      </button>
      {problem && (
        <p role="alert" className="error">
          {problem}
        </p>
      )}
      {e && (
        <dl className="result" data-testid="evaluation">
          <dt>Value</dt>
          <dd>
            <code>{JSON.stringify(e.value ? toJson(ValueSchema, e.value) : null)}</code>
          </dd>
          <dt>Variant</dt>
          <dd>{e.variant || "—"}</dd>
          <dt>Reason</dt>
          <dd>{Reason[e.reason]}</dd>
          <dt>Why</dt>
          <dd>{e.explanation?.summary || e.errorMessage || "—"}</dd>
        </dl>
      )}
    </section>
  );
}

export function FlagPage({ route }: { route: Extract<Route, { page: "flag" }> }) {
  const qc = useQueryClient();
  const { canEdit } = useRole();
  const envs = useQuery(IdentityService.method.listEnvironments, { projectId: route.projectId });
  const flag = useQuery(FlagService.method.getFlag, { projectId: route.projectId, key: route.flagKey });
  const update = useMutation(FlagService.method.updateFlagEnvironment);
  const archive = useMutation(FlagService.method.archiveFlag);
  const unarchive = useMutation(FlagService.method.unarchiveFlag);
  const env = flag.data?.environments.find((e) => e.environmentId === route.environmentId);
  const variants = flag.data?.flag?.variants.map((v) => v.key) ?? [];

  const saved: EnvState = useMemo(
    () => ({ enabled: env?.enabled ?? false, defaultVariant: env?.defaultVariant ?? "", rollout: rolloutOf(env), ruleCount: env?.rules.length ?? 0 }),
    [env],
  );
  const [draft, setDraft] = useState<EnvState>(saved);
  const [reviewing, setReviewing] = useState(false);
  const [message, setMessage] = useState<{ kind: "error" | "ok"; text: string }>();
  useEffect(() => setDraft(saved), [saved]);

  if (flag.error) return <main className="error">{describeError(flag.error)}</main>;
  if (!flag.data) return <main>Loading…</main>;
  const f = flag.data.flag!;
  const changes = describeChanges(saved, draft);

  const otherRules: Rule[] = (env?.rules ?? []).slice(saved.rollout ? 1 : 0);
  const save = () => {
    const rules = draft.rollout
      ? [
          create(RuleSchema, {
            description: "percentage rollout",
            outcome: { kind: { case: "rollout", value: { variants: draft.rollout.map((s) => ({ variant: s.variant, weight: s.percent })) } } },
          }),
          ...otherRules,
        ]
      : otherRules;
    update.mutate(
      {
        environmentId: route.environmentId,
        flagKey: f.key,
        expectedVersion: env?.version ?? 0n,
        enabled: draft.enabled,
        defaultVariant: draft.defaultVariant,
        rules,
        reason: "console",
      },
      {
        onSuccess: () => {
          setReviewing(false);
          setMessage({ kind: "ok", text: "Saved." });
          void qc.invalidateQueries();
        },
        onError: (err) => setMessage({ kind: "error", text: describeError(err) }),
      },
    );
  };

  return (
    <main>
      <p>
        <a href={href({ page: "flags", projectId: route.projectId, environmentId: route.environmentId, query: "" })}>← Flags</a>
      </p>
      <h1>
        {f.key} {f.archived && <span className="pill off">archived</span>}
      </h1>
      <p className="muted">{f.name}</p>
      <nav className="envbar" aria-label="Environments">
        {byName(envs.data?.environments ?? []).map((e) => (
          <a key={e.id} aria-current={e.id === route.environmentId ? "page" : undefined} href={href({ ...route, environmentId: e.id })}>
            {e.name || e.key}
          </a>
        ))}
      </nav>
      <section className="card">
        <h2>Configuration</h2>
        {/* A viewer reads the configuration; a disabled fieldset disables every control in it. */}
        <fieldset className="plain" disabled={!canEdit}>
          <label className="switch">
            <input type="checkbox" checked={draft.enabled} onChange={(e) => setDraft({ ...draft, enabled: e.target.checked })} />
            <span>{draft.enabled ? "On" : "Off"} in this environment</span>
          </label>
          <label htmlFor="default">Default variant</label>
          <select id="default" value={draft.defaultVariant} onChange={(e) => setDraft({ ...draft, defaultVariant: e.target.value })}>
            <option value="">(none: the caller's default)</option>
            {variants.map((v) => (
              <option key={v}>{v}</option>
            ))}
          </select>
          <h3>Percentage rollout</h3>
          {draft.rollout ? (
            <div className="rollout">
              {draft.rollout.map((s) => (
                <label key={s.variant} className="weight">
                  <span>{s.variant}</span>
                  <input
                    type="number"
                    min={0}
                    max={100}
                    aria-label={`Share of ${s.variant} (%)`}
                    value={s.percent}
                    onChange={(e) => setDraft({ ...draft, rollout: setShare(draft.rollout!, s.variant, Number(e.target.value)) })}
                  />
                  %
                </label>
              ))}
              <span className="muted">Total {total(draft.rollout)}%</span>
              {canEdit && (
                <button className="link" onClick={() => setDraft({ ...draft, rollout: undefined })}>
                  Remove rollout
                </button>
              )}
            </div>
          ) : !canEdit ? (
            <p className="muted">None.</p>
          ) : (
            <button
              onClick={() =>
                setDraft({
                  ...draft,
                  rollout: variants.map((v, i) => ({
                    variant: v,
                    percent: i === variants.length - 1 ? 100 - Math.floor(100 / variants.length) * (variants.length - 1) : Math.floor(100 / variants.length),
                  })),
                })
              }
            >
              Add a percentage rollout
            </button>
          )}
          {otherRules.length > 0 && <p className="muted">{otherRules.length} other targeting rule(s) are kept as they are.</p>}
        </fieldset>
        {canEdit && (
          <div className="actions">
            <button disabled={changes.length === 0} onClick={() => setReviewing(true)}>
              Review changes
            </button>
            <button className="link" disabled={changes.length === 0} onClick={() => setDraft(saved)}>
              Discard
            </button>
          </div>
        )}
        {reviewing && changes.length > 0 && (
          <div className="review" role="dialog" aria-label="Changes to save">
            <h3>This will change</h3>
            <ul>
              {changes.map((c) => (
                <li key={c}>{c}</li>
              ))}
            </ul>
            <button onClick={save} disabled={update.isPending}>
              Save
            </button>
            <button className="link" onClick={() => setReviewing(false)}>
              Back
            </button>
          </div>
        )}
        {message && (
          <p role={message.kind === "error" ? "alert" : "status"} className={message.kind}>
            {message.text}
          </p>
        )}
      </section>
      <Debugger flagKey={f.key} environmentId={route.environmentId} />
      <AuditLog projectId={route.projectId} environmentId={route.environmentId} flagKey={f.key} title="History" pageSize={20} />
      {canEdit && (
        <section className="card">
          <h2>Lifecycle</h2>
          {f.archived ? (
            <button onClick={() => unarchive.mutate({ projectId: route.projectId, key: f.key }, { onSuccess: () => void qc.invalidateQueries() })}>
              Restore
            </button>
          ) : (
            <button
              className="danger"
              onClick={() => {
                if (confirm(`Archive ${f.key}? It stops being served in every environment.`))
                  archive.mutate({ projectId: route.projectId, key: f.key }, { onSuccess: () => void qc.invalidateQueries() });
              }}
            >
              Archive
            </button>
          )}
        </section>
      )}
    </main>
  );
}
