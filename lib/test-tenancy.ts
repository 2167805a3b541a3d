/**
 * The tenancy matrix: for every RPC of a service, a call made with one organization's credential
 * against another organization's ids must fail exactly as for an id that does not exist
 * (NOT_FOUND), or be refused before any lookup (PERMISSION_DENIED, which reveals nothing).
 * The helper fails when a method of the service has no entry, so a new RPC cannot skip the matrix.
 * Test code only.
 */
import type { DescService } from "@bufbuild/protobuf";
import { Code, ConnectError } from "@connectrpc/connect";
import { expect } from "vitest";

/** How one method must behave for a foreign caller. */
export type TenancyCase =
  /** Perform the call with the foreign credential against the victim's ids. */
  | { expect: Code.NotFound | Code.PermissionDenied; call: () => Promise<unknown> }
  /** The method takes no ids of another tenant (e.g. WhoAmI): say why, and prove it stays inside. */
  | { notApplicable: string; check?: () => Promise<void> };

/** Runs the matrix; every method of `service` must have a case. */
export async function assertTenancyMatrix(service: DescService, cases: Record<string, TenancyCase>): Promise<void> {
  const names = service.methods.map((m) => m.localName);
  const missing = names.filter((n) => !(n in cases));
  expect(missing, `tenancy matrix for ${service.typeName} lacks methods`).toEqual([]);
  const unknown = Object.keys(cases).filter((n) => !names.includes(n));
  expect(unknown, `tenancy matrix for ${service.typeName} names unknown methods`).toEqual([]);
  for (const [name, c] of Object.entries(cases)) {
    if ("notApplicable" in c) {
      await c.check?.();
      continue;
    }
    let code: Code | undefined;
    try {
      await c.call();
    } catch (err) {
      code = ConnectError.from(err).code;
    }
    expect({ method: name, code: code === undefined ? "succeeded" : Code[code] }).toEqual({ method: name, code: Code[c.expect] });
  }
}
