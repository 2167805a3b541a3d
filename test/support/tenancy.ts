/**
 * The tenancy matrix: for every RPC of a service, how a caller outside the data's reach fares.
 * Three dimensions, each run over every method (the helper fails when a method has no entry, so
 * a new RPC cannot skip one):
 *
 * - foreign organization: a call made with one organization's credential against another's ids
 *   must fail exactly as for an id that does not exist (NOT_FOUND), or be refused before any
 *   lookup (PERMISSION_DENIED, which reveals nothing);
 * - environment scope: an admin key of one environment against another environment of its own
 *   project: changes there (and shared changes) are refused, reads are allowed;
 * - protected environment: an editor against a protected environment: changes there are refused.
 *
 * Test code only.
 */
import type { DescService } from "@bufbuild/protobuf";
import { Code, ConnectError } from "@connectrpc/connect";
import { expect } from "vitest";

/** The dimensions of the matrix. */
export type TenancyDimension = "foreign organization" | "environment scope" | "protected environment";

/** How one method must behave for the caller of a dimension. */
export type TenancyCase =
  /** Perform the call: it must fail with this code. */
  | { expect: Code.NotFound | Code.PermissionDenied; call: () => Promise<unknown> }
  /** Perform the call: it must succeed (a read, or a change the caller may make). */
  | { expect: "allowed"; call: () => Promise<unknown> }
  /** The method takes no ids of another tenant (e.g. WhoAmI): say why, and prove it stays inside. */
  | { notApplicable: string; check?: () => Promise<void> };

/** Runs one dimension of the matrix; every method of `service` must have a case. */
export async function assertTenancyMatrix(
  service: DescService,
  cases: Record<string, TenancyCase>,
  dimension: TenancyDimension = "foreign organization",
): Promise<void> {
  const names = service.methods.map((m) => m.localName);
  const missing = names.filter((n) => !(n in cases));
  expect(missing, `tenancy matrix (${dimension}) for ${service.typeName} lacks methods`).toEqual([]);
  const unknown = Object.keys(cases).filter((n) => !names.includes(n));
  expect(unknown, `tenancy matrix (${dimension}) for ${service.typeName} names unknown methods`).toEqual([]);
  for (const [name, c] of Object.entries(cases)) {
    if ("notApplicable" in c) {
      await c.check?.();
      continue;
    }
    let outcome = "allowed";
    let message = "";
    try {
      await c.call();
    } catch (err) {
      const e = ConnectError.from(err);
      outcome = Code[e.code];
      message = e.rawMessage;
    }
    const expected = c.expect === "allowed" ? "allowed" : Code[c.expect];
    expect({ dimension, method: name, outcome, ...(outcome === expected ? {} : { message }) }).toEqual({ dimension, method: name, outcome: expected });
  }
}
