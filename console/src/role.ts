/**
 * The caller's role, asked once of WhoAmI (the token's own claims, so it is what the services
 * will enforce): pages hide what the role cannot do instead of letting the API refuse it. While
 * the answer is pending nothing is editable, so a viewer never sees a control flash.
 */
import { useQuery } from "@connectrpc/connect-query";
import { AuthService } from "#gen/vane/identity/v1/auth_service_pb.js";
import { ApiKeyKind, Role } from "#gen/vane/identity/v1/identity_pb.js";

export interface Access {
  role: Role;
  /** Flags, segments, targeting, reverts. */
  canEdit: boolean;
  /** Environments, API keys, members. */
  canAdminister: boolean;
  /** The organization's name (owners). */
  isOwner: boolean;
  /** A person (session or personal key), not an environment's admin key: members and personal keys are theirs. */
  isPerson: boolean;
  /** The environment an admin key is bound to, else "". */
  environmentId: string;
}

export function useRole(): Access {
  const who = useQuery(AuthService.method.whoAmI, {}, { staleTime: 60_000 });
  const p = who.data?.principal;
  const role = p?.role ?? Role.UNSPECIFIED;
  return {
    role,
    canEdit: role >= Role.EDITOR,
    canAdminister: role >= Role.ADMIN,
    isOwner: role >= Role.OWNER,
    isPerson: p !== undefined && p.keyKind !== ApiKeyKind.ADMIN,
    environmentId: p?.environmentId ?? "",
  };
}
