import { readFileSync } from "node:fs";
import { describe, expect, it } from "vitest";
import { parse } from "yaml";
import { k8sPath } from "../src/render.ts";

interface Rule {
  alert?: string;
  record?: string;
  expr: string;
  labels?: Record<string, string>;
  annotations?: Record<string, string>;
}
const rules = parse(readFileSync(k8sPath("components/observability/rules.yaml"), "utf8")) as { spec: { groups: { rules: Rule[] }[] } };
const alerts = rules.spec.groups.flatMap((g) => g.rules).filter((r) => r.alert);
const operations = readFileSync(k8sPath("..", "docs", "operations.md"), "utf8");
/** GitHub's anchors for the page's headings. */
const anchors = new Set(
  [...operations.matchAll(/^#+ (.+)$/gm)].map((m) =>
    m[1]
      .toLowerCase()
      .replace(/[^\w\- ]/g, "")
      .replace(/ /g, "-"),
  ),
);

describe("alert rules", () => {
  it("every alert has a severity and a runbook that exists in docs/operations.md", () => {
    expect(alerts.length).toBeGreaterThan(20);
    for (const a of alerts) {
      expect(["page", "ticket"], a.alert).toContain(a.labels?.severity);
      const [, anchor] = /docs\/operations\.md#(.+)$/.exec(a.annotations?.runbook_url ?? "") ?? [];
      expect(anchors, `${a.alert}: ${a.annotations?.runbook_url}`).toContain(anchor);
    }
  });

  it("the operations doc names every alert", () => {
    for (const name of new Set(alerts.map((a) => a.alert!))) expect(operations, name).toContain(`\`${name}\``);
  });

  it("alerts on NATS and Postgres outages, and on staleness rather than age", () => {
    const names = new Set(alerts.map((a) => a.alert));
    for (const n of ["NatsDown", "PostgresUnavailable", "PostgresNoPrimary", "PostgresFailover"]) expect(names).toContain(n);
    const all = rules.spec.groups
      .flatMap((g) => g.rules)
      .map((r) => r.expr)
      .join("\n");
    expect(all).toContain("vane_evaluator_snapshot_stale_seconds");
    expect(all).not.toMatch(/snapshot_age_seconds/);
    // The staleness alerts cannot fire without the metric: its absence pages on its own.
    expect(alerts.find((a) => a.alert === "EvaluatorMetricsAbsent")).toMatchObject({
      expr: "absent(vane_evaluator_snapshot_stale_seconds)",
      labels: { severity: "page" },
    });
  });

  it("evaluation SLIs leave the server streams out", () => {
    const sli = rules.spec.groups.flatMap((g) => g.rules).filter((r) => /^vane:evaluation_/.test(r.record ?? ""));
    expect(sli.length).toBe(14);
    for (const r of sli) {
      for (const selector of r.expr.match(/rpc_server_duration_\w+\{[^}]*\}/g) ?? []) expect(selector, r.record).toContain('rpc_method!~"Watch|EventStream"');
    }
  });

  it("the burn-rate alerts pair a long and a short window for each of the four burn rates", () => {
    for (const name of [
      "EvaluationErrorsBudgetBurn",
      "EvaluationLatencyBudgetBurn",
      "SnapshotStaleBudgetBurn",
      "ConsumerBacklogBudgetBurn",
      "OutboxBacklogBudgetBurn",
    ]) {
      expect(
        alerts.filter((a) => a.alert === name).map((a) => a.labels?.long_window),
        name,
      ).toEqual(["1h", "6h", "1d", "3d"]);
    }
  });
});
