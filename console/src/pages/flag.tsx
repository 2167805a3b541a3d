/**
 * One flag in one environment (a tab per environment): on/off, default variant, the ordered
 * targeting rules (rules-editor.tsx) with the saved ones as flagd JSON Logic, a review of the
 * changes before saving, archive/restore, the evaluation debugger with the rule that matched and why, and
 * the flag's history. A viewer sees the same page with every control that changes something hidden
 * or disabled.
 */
import { toJson, type JsonObject } from "@bufbuild/protobuf";
import { ValueSchema } from "@bufbuild/protobuf/wkt";
import { useMutation, useQuery } from "@connectrpc/connect-query";
import { useQueryClient } from "@tanstack/react-query";
import { useEffect, useMemo, useState } from "react";
import { type Evaluation, EvaluationService, Reason } from "#gen/vane/evaluation/v1/evaluation_service_pb.js";
import { FlagService } from "#gen/vane/flags/v1/flag_service_pb.js";
import { IdentityService } from "#gen/vane/identity/v1/identity_service_pb.js";
import { describeError } from "../api.ts";
import { AuditLog } from "../audit-log.tsx";
import { describeChanges, type EnvState } from "../diff.ts";
import { useRole } from "../role.ts";
import { byName, href, type Route } from "../router.ts";
import { draftsToRules, type RuleProblem, ruleToDraft } from "../rules.ts";
import { RulesEditor } from "./rules-editor.tsx";

/** The saved rules as flagd JSON Logic (what the evaluator runs), fetched when opened. */
function FlagdView({ environmentId, flagKey, version }: { environmentId: string; flagKey: string; version: bigint }) {
  const [open, setOpen] = useState(false);
  const exported = useQuery(FlagService.method.exportFlagd, { environmentId }, { enabled: open });
  let text = "";
  if (exported.data) {
    const flags = (JSON.parse(exported.data.flagdJson) as { flags?: Record<string, unknown> }).flags ?? {};
    text = flagKey in flags ? JSON.stringify(flags[flagKey], null, 2) : `(not exported: ${exported.data.skipped.join("; ") || "no such flag"})`;
  }
  return (
    <details className="flagd-view" onToggle={(e) => setOpen((e.target as HTMLDetailsElement).open)}>
      <summary>As flagd JSON Logic (saved version {String(version)})</summary>
      {exported.error && <p className="error">{describeError(exported.error)}</p>}
      {open && !exported.data && !exported.error && <p className="muted">Loading…</p>}
      {text && <pre data-testid="flagd-json">{text}</pre>}
    </details>
  );
}

/** Why an evaluation served what it did, with rules numbered as the page shows them. */
function why(e: Evaluation): string {
  const x = e.explanation;
  if (x && x.matchedRuleIndex >= 0) {
    const name = x.matchedRuleDescription ? ` “${x.matchedRuleDescription}”` : "";
    return `Rule ${x.matchedRuleIndex + 1}${name} matched: served “${e.variant}”`;
  }
  return x?.summary || e.errorMessage || "—";
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
          <dd>{why(e)}</dd>
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
    () => ({ enabled: env?.enabled ?? false, defaultVariant: env?.defaultVariant ?? "", rules: (env?.rules ?? []).map(ruleToDraft) }),
    [env],
  );
  const [problems, setProblems] = useState<RuleProblem[]>([]);
  const [draft, setDraft] = useState<EnvState>(saved);
  const [reviewing, setReviewing] = useState(false);
  const [message, setMessage] = useState<{ kind: "error" | "ok"; text: string }>();
  const [lifecycleMessage, setLifecycleMessage] = useState<{ kind: "error" | "ok"; text: string }>();
  const lifecycle = (done: string) => ({
    onSuccess: () => {
      setLifecycleMessage({ kind: "ok", text: done });
      void qc.invalidateQueries();
    },
    onError: (err: unknown) => setLifecycleMessage({ kind: "error", text: describeError(err) }),
  });
  useEffect(() => setDraft(saved), [saved]);

  if (flag.error) return <main className="error">{describeError(flag.error)}</main>;
  if (!flag.data) return <main>Loading…</main>;
  const f = flag.data.flag!;
  const changes = describeChanges(saved, draft);

  const review = () => {
    const { problems } = draftsToRules(draft.rules, variants);
    setProblems(problems);
    setReviewing(problems.length === 0);
    if (problems.length > 0)
      setMessage({ kind: "error", text: `Fix ${problems.length === 1 ? "the problem" : `the ${problems.length} problems`} shown in the rules first.` });
    else setMessage(undefined);
  };
  const save = () => {
    const { rules } = draftsToRules(draft.rules, variants);
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
        {" · "}
        <a href={href({ page: "experiments", projectId: route.projectId, environmentId: route.environmentId, newForFlag: route.flagKey })}>Run an experiment</a>
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
          <h3>Targeting rules</h3>
          <p className="muted">The first rule that matches serves; without a match, the default variant.</p>
          <RulesEditor
            projectId={route.projectId}
            variants={variants}
            rules={draft.rules}
            problems={problems}
            readOnly={!canEdit}
            onChange={(rules) => {
              setDraft({ ...draft, rules });
              setReviewing(false);
              // Once problems are shown, they follow the edits (a fixed field loses its message).
              if (problems.length > 0) setProblems(draftsToRules(rules, variants).problems);
            }}
          />
        </fieldset>
        <FlagdView environmentId={route.environmentId} flagKey={f.key} version={env?.version ?? 0n} />
        {canEdit && (
          <div className="actions">
            <button disabled={changes.length === 0} onClick={review}>
              Review changes
            </button>
            <button
              className="link"
              disabled={changes.length === 0}
              onClick={() => {
                setDraft(saved);
                setProblems([]);
              }}
            >
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
            <button onClick={() => unarchive.mutate({ projectId: route.projectId, key: f.key, expectedVersion: f.version }, lifecycle("Restored."))}>
              Restore
            </button>
          ) : (
            <button
              className="danger"
              onClick={() => {
                if (confirm(`Archive ${f.key}? It stops being served in every environment.`))
                  archive.mutate({ projectId: route.projectId, key: f.key, expectedVersion: f.version }, lifecycle("Archived."));
              }}
            >
              Archive
            </button>
          )}
          {lifecycleMessage && (
            <p role={lifecycleMessage.kind === "error" ? "alert" : "status"} className={lifecycleMessage.kind}>
              {lifecycleMessage.text}
            </p>
          )}
        </section>
      )}
    </main>
  );
}
