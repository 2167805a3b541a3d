/**
 * Tenancy checks. Every lookup is scoped to the caller's organization (and, for project-scoped
 * admin keys, to its project); anything outside is NOT_FOUND, exactly like an id that never existed.
 */
import { ApiKeyKind, type Principal, Role, requireRole } from "#lib/auth/auth.ts";
import { notFound, permissionDenied } from "#lib/process/errors.ts";

/** True for a person: a user session or a personal key. */
export function isPerson(p: Principal): boolean {
  return p.keyKind === ApiKeyKind.UNSPECIFIED || p.keyKind === ApiKeyKind.PERSONAL;
}

/** The caller may act on `organizationId`, with at least `role`. */
export function inOrganization(p: Principal, organizationId: string, role: Role): void {
  requireRole(p, role);
  if (!p.organizationId || p.organizationId !== organizationId) throw notFound("organization");
}

/** Organization-wide operations (members, projects list-wide changes) are for people only. */
export function requireOrganizationWide(p: Principal): void {
  if (p.projectId) throw permissionDenied("a project-scoped key cannot manage the organization; use a personal key");
}

/** The caller may see this row (or it is NOT_FOUND). */
export function visible<T extends { organization_id: string }>(p: Principal, row: T | undefined, what: string, projectId?: (row: T) => string): T {
  if (!row || row.organization_id !== p.organizationId) throw notFound(what);
  if (p.projectId && projectId && projectId(row) !== p.projectId) throw notFound(what);
  return row;
}

export { Role };
