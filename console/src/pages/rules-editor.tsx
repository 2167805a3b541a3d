/**
 * The ordered targeting rules of a flag in one environment: conditions on attributes with every
 * operator the API has, segments, raw JSON Logic; an outcome that serves a variant, a percentage
 * rollout whose shares always sum to 100, or a JSON Logic expression; rules moved by drag and drop
 * or with the arrow buttons (keyboard). Problems are shown next to the field they concern.
 */
import { useQuery } from "@connectrpc/connect-query";
import { useState } from "react";
import { Operator } from "#gen/vane/flags/v1/flags_pb.js";
import { SegmentService } from "#gen/vane/flags/v1/segment_service_pb.js";
import { setShare, total } from "../rollout.ts";
import { type ConditionDraft, newUid, OPERATORS, type OutcomeDraft, type RuleDraft, type RuleProblem } from "../rules.ts";

interface Props {
  projectId: string;
  variants: readonly string[];
  rules: RuleDraft[];
  onChange: (rules: RuleDraft[]) => void;
  problems: readonly RuleProblem[];
  /** A viewer's page: the rules shown, nothing to add, move or remove (inputs are disabled by the page's fieldset). */
  readOnly?: boolean;
}

/** An even split over the variants, summing to 100. */
export function evenShares(variants: readonly string[]) {
  const each = Math.floor(100 / Math.max(1, variants.length));
  return variants.map((variant, i) => ({ variant, percent: i === variants.length - 1 ? 100 - each * (variants.length - 1) : each }));
}

const blankCondition = (): ConditionDraft => ({ kind: "attribute", attribute: "", operator: Operator.EQUALS, values: "" });

function FieldProblem({ problems, field }: { problems: readonly RuleProblem[]; field: string }) {
  const p = problems.find((x) => x.field === field);
  return p ? (
    <span className="error field-problem" role="alert">
      {p.message}
    </span>
  ) : null;
}

function ConditionRow({
  n,
  j,
  c,
  segments,
  onChange,
  onRemove,
  problems,
}: {
  /** The label ("2.1": rule 2, condition 1). */
  n: string;
  /** The condition's index in its rule (problems name it). */
  j: number;
  c: ConditionDraft;
  segments: string[];
  onChange: (c: ConditionDraft) => void;
  onRemove: () => void;
  problems: readonly RuleProblem[];
}) {
  return (
    <div className="condition">
      <button className="link remove" aria-label={`Remove condition ${n}`} title="Remove this condition" onClick={onRemove}>
        ✕
      </button>
      {c.kind === "kept" ? (
        <span className="muted">{c.summary} (kept as it is)</span>
      ) : (
        <>
          <select
            aria-label={`Condition ${n} kind`}
            value={c.kind}
            onChange={(e) => {
              const kind = e.target.value;
              onChange(kind === "segment" ? { kind, segmentKey: segments[0] ?? "", negate: false } : kind === "json" ? { kind, text: "{}" } : blankCondition());
            }}
          >
            <option value="attribute">Attribute</option>
            <option value="segment">Segment</option>
            <option value="json">JSON Logic</option>
          </select>
          {c.kind === "attribute" && (
            <>
              <input
                aria-label={`Condition ${n} attribute`}
                placeholder="email"
                value={c.attribute}
                onChange={(e) => onChange({ ...c, attribute: e.target.value })}
              />
              <select
                aria-label={`Condition ${n} operator`}
                value={c.operator}
                onChange={(e) => onChange({ ...c, operator: Number(e.target.value) as Operator })}
              >
                {OPERATORS.map((o) => (
                  <option key={o.op} value={o.op}>
                    {o.label}
                  </option>
                ))}
              </select>
              <input
                aria-label={`Condition ${n} values`}
                aria-invalid={problems.some((p) => p.field === `condition-${j}-values`)}
                className="values"
                placeholder={OPERATORS.find((o) => o.op === c.operator)?.hint}
                value={c.values}
                onChange={(e) => onChange({ ...c, values: e.target.value })}
              />
              <FieldProblem problems={problems} field={`condition-${j}-attribute`} />
              <FieldProblem problems={problems} field={`condition-${j}-values`} />
            </>
          )}
          {c.kind === "segment" && (
            <>
              <select
                aria-label={`Condition ${n} membership`}
                value={c.negate ? "out" : "in"}
                onChange={(e) => onChange({ ...c, negate: e.target.value === "out" })}
              >
                <option value="in">in segment</option>
                <option value="out">not in segment</option>
              </select>
              <select aria-label={`Condition ${n} segment`} value={c.segmentKey} onChange={(e) => onChange({ ...c, segmentKey: e.target.value })}>
                <option value="">(choose)</option>
                {segments.map((s) => (
                  <option key={s}>{s}</option>
                ))}
              </select>
              <FieldProblem problems={problems} field={`condition-${j}-segment`} />
            </>
          )}
          {c.kind === "json" && (
            <>
              <textarea
                aria-label={`Condition ${n} JSON Logic`}
                rows={3}
                spellCheck={false}
                value={c.text}
                onChange={(e) => onChange({ ...c, text: e.target.value })}
              />
              <FieldProblem problems={problems} field={`condition-${j}-json`} />
            </>
          )}
        </>
      )}
    </div>
  );
}

function OutcomeEditor({
  n,
  o,
  variants,
  onChange,
  problems,
}: {
  n: number;
  o: OutcomeDraft;
  variants: readonly string[];
  onChange: (o: OutcomeDraft) => void;
  problems: readonly RuleProblem[];
}) {
  return (
    <div className="outcome">
      <label htmlFor={`serve-${n}`}>Serve</label>
      <select
        id={`serve-${n}`}
        aria-label={`Rule ${n} serves`}
        value={o.kind}
        onChange={(e) => {
          const kind = e.target.value;
          onChange(
            kind === "rollout"
              ? { kind, shares: evenShares(variants), bucketBy: "", seed: "", experimentId: "" }
              : kind === "json"
                ? { kind, text: '"' + (variants[0] ?? "") + '"' }
                : { kind: "variant", variant: variants[0] ?? "" },
          );
        }}
      >
        <option value="variant">a variant</option>
        <option value="rollout">a percentage rollout</option>
        <option value="json">a JSON Logic expression</option>
      </select>
      {o.kind === "variant" && (
        <>
          <select aria-label={`Rule ${n} variant`} value={o.variant} onChange={(e) => onChange({ ...o, variant: e.target.value })}>
            <option value="">(choose)</option>
            {variants.map((v) => (
              <option key={v}>{v}</option>
            ))}
          </select>
          <FieldProblem problems={problems} field="outcome-variant" />
        </>
      )}
      {o.kind === "rollout" && (
        <div className="rollout">
          {o.shares.map((s) => (
            <label key={s.variant} className="weight">
              <span>{s.variant}</span>
              <input
                type="number"
                min={0}
                max={100}
                aria-label={`Share of ${s.variant} (%)`}
                value={s.percent}
                onChange={(e) => onChange({ ...o, shares: setShare(o.shares, s.variant, Number(e.target.value)) })}
              />
              %
            </label>
          ))}
          <span className="muted">Total {total(o.shares)}%</span>
          <input
            aria-label={`Rule ${n} bucket by`}
            placeholder="bucket by: targetingKey"
            value={o.bucketBy}
            onChange={(e) => onChange({ ...o, bucketBy: e.target.value })}
          />
          {o.experimentId && <span className="pill">experiment</span>}
          <FieldProblem problems={problems} field="outcome-rollout" />
        </div>
      )}
      {o.kind === "json" && (
        <>
          <textarea
            aria-label={`Rule ${n} JSON Logic outcome`}
            rows={3}
            spellCheck={false}
            value={o.text}
            onChange={(e) => onChange({ ...o, text: e.target.value })}
          />
          <FieldProblem problems={problems} field="outcome-json" />
        </>
      )}
    </div>
  );
}

export function RulesEditor({ projectId, variants, rules, onChange, problems, readOnly = false }: Props) {
  const segments = useQuery(SegmentService.method.listSegments, { projectId });
  const segmentKeys = (segments.data?.segments ?? []).map((s) => s.key).sort();
  const [dragging, setDragging] = useState<number>();
  const set = (i: number, r: RuleDraft) => onChange(rules.map((x, k) => (k === i ? r : x)));
  const move = (from: number, to: number) => {
    if (to < 0 || to >= rules.length || from === to) return;
    const out = [...rules];
    const [r] = out.splice(from, 1);
    out.splice(to, 0, r);
    onChange(out);
  };
  return (
    <div className="rules">
      {rules.length === 0 && <p className="muted">No rules: everyone gets the default variant.</p>}
      <ol>
        {rules.map((r, i) => {
          const mine = problems.filter((p) => p.rule === i);
          return (
            <li
              key={r.uid}
              className={`rule${dragging === i ? " dragging" : ""}`}
              data-testid="rule"
              draggable={!readOnly}
              onDragStart={(e) => {
                setDragging(i);
                e.dataTransfer.effectAllowed = "move";
              }}
              onDragOver={(e) => e.preventDefault()}
              onDrop={(e) => {
                e.preventDefault();
                if (dragging !== undefined) move(dragging, i);
                setDragging(undefined);
              }}
              onDragEnd={() => setDragging(undefined)}
            >
              <div className="rule-head">
                <span className="drag" aria-hidden="true" title="Drag to reorder">
                  ⠿
                </span>
                <strong>Rule {i + 1}</strong>
                <input
                  aria-label={`Rule ${i + 1} description`}
                  placeholder="what it is for"
                  value={r.description}
                  onChange={(e) => set(i, { ...r, description: e.target.value })}
                />
                <button className="link" aria-label={`Move rule ${i + 1} up`} disabled={i === 0} onClick={() => move(i, i - 1)}>
                  ↑
                </button>
                <button className="link" aria-label={`Move rule ${i + 1} down`} disabled={i === rules.length - 1} onClick={() => move(i, i + 1)}>
                  ↓
                </button>
                <button className="link" aria-label={`Remove rule ${i + 1}`} onClick={() => onChange(rules.filter((_, k) => k !== i))}>
                  Remove
                </button>
              </div>
              <div className="conditions">
                <span className="muted">{r.conditions.length === 0 ? "Everyone" : "If all of"}</span>
                {r.conditions.map((c, j) => (
                  <ConditionRow
                    key={j}
                    n={`${i + 1}.${j + 1}`}
                    j={j}
                    c={c}
                    segments={segmentKeys}
                    problems={mine}
                    onChange={(nc) => set(i, { ...r, conditions: r.conditions.map((x, k) => (k === j ? nc : x)) })}
                    onRemove={() => set(i, { ...r, conditions: r.conditions.filter((_, k) => k !== j) })}
                  />
                ))}
                <button className="link" onClick={() => set(i, { ...r, conditions: [...r.conditions, blankCondition()] })}>
                  + condition
                </button>
              </div>
              <OutcomeEditor n={i + 1} o={r.outcome} variants={variants} problems={mine} onChange={(o) => set(i, { ...r, outcome: o })} />
            </li>
          );
        })}
      </ol>
      {!readOnly && (
        <>
          <button
            className="link"
            onClick={() =>
              onChange([
                ...rules,
                { id: "", uid: newUid(), description: "", conditions: [blankCondition()], outcome: { kind: "variant", variant: variants[0] ?? "" } },
              ])
            }
          >
            + Add a rule
          </button>
          <button
            className="link"
            onClick={() =>
              onChange([
                {
                  id: "",
                  uid: newUid(),
                  description: "percentage rollout",
                  conditions: [],
                  outcome: { kind: "rollout", shares: evenShares(variants), bucketBy: "", seed: "", experimentId: "" },
                },
                ...rules,
              ])
            }
          >
            Add a percentage rollout
          </button>
        </>
      )}
    </div>
  );
}
