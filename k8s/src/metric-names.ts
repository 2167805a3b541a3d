/**
 * Reads the metric names that alert rules, dashboards and docs use, so a test can check each
 * one against what the services really export (k8s/test/metric-names.test.ts).
 */

/** The parts of a PrometheusRule these checks read. */
export interface PrometheusRuleDoc {
  spec?: { groups?: { rules?: { expr?: string; record?: string }[] }[] };
}

/** Identifiers that look like Vane metrics but name other things (a KV bucket, a key prefix). */
const notMetrics = new Set(["vane_snapshots", "vane_personal", "vane_events"]);

/**
 * Metrics that come from outside Vane, by source, and may be used without being scraped from
 * a Vane process. Keep this list to what the rules and docs really use.
 */
export const externalMetrics = new Set([
  // CloudNativePG's exporter (components/observability/podmonitor-postgres.yaml)
  "cnpg_collector_up",
  "cnpg_pg_replication_in_recovery",
  "cnpg_pg_replication_lag",
  // prometheus-nats-exporter of the NATS Helm chart (promExporter, k8s/infra/nats/helm-values.yaml)
  "gnatsd_varz_connections",
  "gnatsd_varz_jetstream_stats_storage",
  "gnatsd_varz_jetstream_config_max_storage",
  // Prometheus itself
  "up",
]);

const candidate = /\b(?:vane|rpc|cnpg|gnatsd|jetstream|kube)_[a-zA-Z0-9_]+|\bup(?=\{)/g;

/** Metric-like identifiers in a text (PromQL, JSON, Markdown), label names included. */
export function metricNamesIn(text: string): string[] {
  const out: string[] = [];
  // Docs abbreviate families as `name_{bucket,sum,count}`: spell them out.
  const expanded = text.replace(/\b(\w+_)\{(\w+(?:,\w+)+)\}/g, (_m, stem: string, list: string) =>
    list
      .split(",")
      .map((x) => stem + x)
      .join(" "),
  );
  for (const m of expanded.matchAll(candidate)) {
    const name = m[0];
    if (!notMetrics.has(name) && ![...notMetrics].some((p) => name.startsWith(`${p}_`))) out.push(name);
  }
  return out;
}

/** Names a PrometheusRule document defines with `record:` (recording rules). */
export function recordedNames(rule: PrometheusRuleDoc): Set<string> {
  return new Set((rule.spec?.groups ?? []).flatMap((g) => (g.rules ?? []).flatMap((r) => (r.record ? [r.record] : []))));
}

/** Metric and label names on a Prometheus text exposition page. */
export function exposedNames(page: string): Set<string> {
  const out = new Set<string>();
  for (const line of page.split("\n")) {
    if (line.startsWith("#")) continue;
    const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{[^}]*\})?\s/.exec(line);
    if (!m) continue;
    out.add(m[1]);
    for (const l of (m[2] ?? "").matchAll(/([a-zA-Z_][a-zA-Z0-9_]*)="/g)) out.add(l[1]);
  }
  return out;
}

/** Labels Prometheus adds to every scraped series (target labels), plus histogram buckets' `le`. */
export const targetLabels = new Set(["namespace", "pod", "container", "job", "instance", "endpoint", "service", "le"]);

/** Label names a PromQL expression selects on or aggregates by. */
export function labelNamesIn(expr: string): string[] {
  const out: string[] = [];
  for (const block of expr.matchAll(/\{([^{}]*)\}/g)) {
    for (const m of block[1].matchAll(/([a-zA-Z_][a-zA-Z0-9_]*)\s*(?:=~|!~|!=|=)/g)) out.push(m[1]);
  }
  for (const by of expr.matchAll(/\b(?:by|without)\s*\(([^)]*)\)/g)) {
    for (const l of by[1].split(",")) if (l.trim()) out.push(l.trim());
  }
  return out;
}

/** The PromQL expressions of a PrometheusRule document (alerts and recording rules). */
export function ruleExpressions(rule: PrometheusRuleDoc): string[] {
  return (rule.spec?.groups ?? []).flatMap((g) => (g.rules ?? []).map((r) => r.expr ?? ""));
}

/** The PromQL expressions of a Grafana dashboard's panels. */
export function dashboardExpressions(dashboard: { panels?: { targets?: { expr?: string }[] }[] }): string[] {
  return (dashboard.panels ?? []).flatMap((p) => (p.targets ?? []).map((t) => t.expr ?? ""));
}
