/**
 * vane.identity.v1.AuthService: credentials in, short-lived signed access tokens out.
 */
import { randomUUID } from "node:crypto";
import { create } from "@bufbuild/protobuf";
import { timestampFromDate } from "@bufbuild/protobuf/wkt";
import type { HandlerContext, ServiceImpl } from "@connectrpc/connect";
import type { Kysely } from "kysely";
import {
  AuthService,
  ExchangeApiKeyResponseSchema,
  ExchangeOidcTokenResponseSchema,
  GetSignInOptionsResponseSchema,
  WhoAmIResponseSchema,
} from "#gen/vane/identity/v1/auth_service_pb.js";
import { principalFromClaims, requirePrincipal, type VaneClaims } from "#lib/auth/auth.ts";
import { clientAddress, sourceOf } from "#lib/server/client-address.ts";
import { failedPrecondition, notFound, unauthenticated } from "#lib/process/errors.ts";
import { hashSecret, keyPrefixOf } from "./api-key-secrets.ts";
import type { ExchangeLimits } from "./exchange-limits.ts";
import type { OidcVerifier } from "./oidc.ts";
import type { IdentityDatabase } from "./schema.ts";
import type { KeyRing } from "./signing-keys.ts";

/** Dependencies of the AuthService. */
export interface AuthServiceDeps {
  db: Kysely<IdentityDatabase>;
  keys: KeyRing;
  /** Lifetime of tokens for API keys and personal keys. */
  keyTokenTtlMs: number;
  /** Lifetime of console sessions. */
  userTokenTtlMs: number;
  oidc?: OidcVerifier;
  /** What GetSignInOptions tells clients: the provider and the public client id there. */
  signInOptions?: { issuer: string; clientId: string };
  /** Rate limits of both exchanges, by source and API key prefix. */
  limits: ExchangeLimits;
  /** Proxies in front of identity that append the caller to X-Forwarded-For. */
  trustedProxyHops: number;
}

/** Creates the AuthService implementation. */
export function createAuthService(deps: AuthServiceDeps): ServiceImpl<typeof AuthService> {
  const { db, keys } = deps;

  async function issue(claims: VaneClaims, ttlMs: number) {
    const { token, expiresAt } = await keys.sign(claims, ttlMs);
    return { accessToken: token, expireTime: timestampFromDate(expiresAt), principal: principalFromClaims(claims) };
  }

  const sourceOfCall = (ctx: HandlerContext) => sourceOf(clientAddress(ctx, deps.trustedProxyHops));

  return {
    exchangeApiKey: (req, ctx) =>
      deps.limits.guard({ source: sourceOfCall(ctx), keyPrefix: keyPrefixOf(req.apiKey) }, ctx, async () => {
        const key = await db
          .selectFrom("api_keys")
          .leftJoin("members", "members.id", "api_keys.member_id")
          .selectAll("api_keys")
          .select(["members.user_id", "members.role as member_role"])
          .where("secret_hash", "=", hashSecret(req.apiKey))
          .executeTakeFirst();
        if (!key || key.revoked_at) throw unauthenticated("the API key is unknown or has been revoked");
        let claims: VaneClaims;
        if (key.kind === "personal") {
          if (!key.user_id || !key.member_role) throw unauthenticated("the API key's member has left the organization");
          claims = { sub: key.user_id, org: key.organization_id, role: key.member_role, kind: "personal" };
        } else {
          if (!key.environment_id || !key.project_id) throw unauthenticated("the API key's environment has been deleted");
          claims = {
            sub: key.id,
            org: key.organization_id,
            prj: key.project_id,
            env: key.environment_id,
            kind: key.kind,
            ...(key.kind === "admin" ? { role: "admin" } : {}),
          };
        }
        await db.updateTable("api_keys").set({ last_used_at: new Date() }).where("id", "=", key.id).execute();
        return create(ExchangeApiKeyResponseSchema, await issue(claims, deps.keyTokenTtlMs));
      }),

    async exchangeOidcToken(req, ctx) {
      const oidc = deps.oidc;
      if (!oidc) throw failedPrecondition("OpenID Connect login is not configured: set VANE_OIDC_ISSUER and VANE_OIDC_AUDIENCE");
      return deps.limits.guard({ source: sourceOfCall(ctx) }, ctx, async () => {
        const who = await oidc.verify(req.idToken);
        const user = await db.transaction().execute(async (trx) => {
          const linked = await trx
            .selectFrom("users")
            .select("id")
            .where("oidc_issuer", "=", who.issuer)
            .where("oidc_subject", "=", who.subject)
            .executeTakeFirst();
          if (linked) return linked;
          // First login: link the account an admin invited by email, or create one. Either claims
          // the email (an invitation to it may exist or come later), so the provider must have
          // verified it: many let anyone sign up with any address.
          if (!who.emailVerified) {
            throw unauthenticated("the provider has not verified this email address (email_verified is not true); verify it there, then sign in again");
          }
          const byEmail = await trx.selectFrom("users").select(["id", "oidc_subject"]).where("email", "=", who.email).executeTakeFirst();
          if (byEmail && byEmail.oidc_subject && byEmail.oidc_subject !== who.subject) {
            throw unauthenticated("this email is already linked to another identity at the provider");
          }
          if (byEmail) {
            await trx.updateTable("users").set({ oidc_issuer: who.issuer, oidc_subject: who.subject }).where("id", "=", byEmail.id).execute();
            return { id: byEmail.id };
          }
          const id = randomUUID();
          await trx.insertInto("users").values({ id, email: who.email, oidc_issuer: who.issuer, oidc_subject: who.subject }).execute();
          return { id };
        });
        let q = db.selectFrom("members").select(["organization_id", "role"]).where("user_id", "=", user.id);
        if (req.organizationId) q = q.where("organization_id", "=", req.organizationId);
        const membership = await q.orderBy("created_at").executeTakeFirst();
        if (req.organizationId && !membership) throw notFound("organization");
        const claims: VaneClaims = membership
          ? { sub: user.id, org: membership.organization_id, role: membership.role, kind: "user" }
          : { sub: user.id, kind: "user" };
        return create(ExchangeOidcTokenResponseSchema, await issue(claims, deps.userTokenTtlMs));
      });
    },

    async getSignInOptions() {
      const o = deps.signInOptions;
      // offline_access asks for a refresh token, so clients renew without sending the person back.
      return create(
        GetSignInOptionsResponseSchema,
        o ? { oidcIssuer: o.issuer, oidcClientId: o.clientId, oidcScopes: ["openid", "email", "offline_access"] } : {},
      );
    },

    async whoAmI(_req, ctx) {
      return create(WhoAmIResponseSchema, { principal: requirePrincipal(ctx) });
    },
  };
}
