/** The project-wide audit feed: every change to its flags and segments, newest first, live. */
import { AuditLog } from "../audit-log.tsx";
import type { Route } from "../router.ts";

export function AuditPage({ route }: { route: Extract<Route, { page: "audit" }> }) {
  return (
    <main>
      <h1>Audit log</h1>
      <p className="muted">Who changed what in this project and when. Flag changes can be reverted; segments are edited on their page.</p>
      <AuditLog projectId={route.projectId} environmentId={route.environmentId} title="Changes" pageSize={50} />
    </main>
  );
}
