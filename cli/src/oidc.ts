/**
 * `vane login --oidc`: the OpenID Connect device-authorization grant (RFC 8628) as a public client
 * — the person confirms a code in any browser, the CLI polls — and the refresh of a stored
 * session's ID token. oauth4webapi does the protocol checks.
 */
import * as oauth from "oauth4webapi";
import { createClient } from "@connectrpc/connect";
import { AuthService } from "#gen/vane/identity/v1/auth_service_pb.js";
import type { OidcSession } from "./config.ts";
import { UserError } from "./errors.ts";
import { transportFor } from "./session.ts";

// A plain-http issuer is only accepted because the server's operator configured it (a loopback provider).
const httpOptions = (issuer: string) => (new URL(issuer).protocol === "http:" ? { [oauth.allowInsecureRequests]: true } : {});

async function discover(issuer: string): Promise<oauth.AuthorizationServer> {
  const url = new URL(issuer);
  return oauth.processDiscoveryResponse(url, await oauth.discoveryRequest(url, { algorithm: "oidc", ...httpOptions(issuer) }));
}

const expiry = (claims: oauth.IDToken | undefined) => (claims?.exp ?? 0) * 1000;

/** Signs in at the provider the server names; `tell` shows the person where to confirm. */
export async function deviceLogin(url: string, tell: (text: string) => void): Promise<OidcSession> {
  const options = await createClient(AuthService, transportFor(url)).getSignInOptions({});
  if (!options.oidcIssuer) throw new UserError(`${url} has no OpenID Connect provider configured (VANE_OIDC_ISSUER); sign in with an API key`);
  const issuer = options.oidcIssuer;
  const as = await discover(issuer);
  if (!as.device_authorization_endpoint) {
    throw new UserError(`the provider ${issuer} does not offer the device grant (no device_authorization_endpoint); sign in with an API key`);
  }
  const client: oauth.Client = { client_id: options.oidcClientId };
  const http = httpOptions(issuer);
  const started = await oauth.processDeviceAuthorizationResponse(
    as,
    client,
    await oauth.deviceAuthorizationRequest(as, client, oauth.None(), new URLSearchParams({ scope: options.oidcScopes.join(" ") }), http),
  );
  tell(
    `To sign in, open ${started.verification_uri_complete ?? started.verification_uri}\n` +
      (started.verification_uri_complete ? "" : `and enter the code ${started.user_code}\n`) +
      "Waiting for you to confirm there…\n",
  );
  let interval = (started.interval ?? 5) * 1000;
  const deadline = Date.now() + started.expires_in * 1000;
  while (Date.now() < deadline) {
    // RFC 8628: poll no faster than the provider's interval, slower when it says slow_down.
    await new Promise((r) => setTimeout(r, interval));
    try {
      const tokens = await oauth.processDeviceCodeResponse(as, client, await oauth.deviceCodeGrantRequest(as, client, oauth.None(), started.device_code, http));
      if (!tokens.id_token) throw new UserError("the provider answered without an ID token; is the openid scope allowed for this client?");
      return {
        issuer,
        clientId: options.oidcClientId,
        idToken: tokens.id_token,
        idTokenExpiresAt: expiry(oauth.getValidatedIdTokenClaims(tokens)),
        refreshToken: tokens.refresh_token,
      };
    } catch (err) {
      if (!(err instanceof oauth.ResponseBodyError)) throw err;
      if (err.error === "slow_down") interval += 5000;
      else if (err.error !== "authorization_pending")
        throw new UserError(`the provider refused the sign-in: ${err.error} ${err.error_description ?? ""}`.trim());
    }
  }
  throw new UserError("the sign-in code expired before it was confirmed; run vane login --oidc again");
}

/** The session with an ID token valid for at least a minute: refreshed when it is not. */
export async function freshSession(s: OidcSession): Promise<OidcSession> {
  if (s.idTokenExpiresAt - Date.now() > 60_000) return s;
  if (!s.refreshToken) throw new UserError("the OpenID Connect session has expired and has no refresh token; run vane login --oidc again");
  const as = await discover(s.issuer);
  const client: oauth.Client = { client_id: s.clientId };
  const tokens = await oauth.processRefreshTokenResponse(
    as,
    client,
    await oauth.refreshTokenGrantRequest(as, client, oauth.None(), s.refreshToken, httpOptions(s.issuer)),
  );
  if (!tokens.id_token) throw new UserError("the provider's refresh answer has no ID token; run vane login --oidc again");
  return {
    ...s,
    idToken: tokens.id_token,
    idTokenExpiresAt: expiry(oauth.getValidatedIdTokenClaims(tokens)),
    refreshToken: tokens.refresh_token ?? s.refreshToken,
  };
}
