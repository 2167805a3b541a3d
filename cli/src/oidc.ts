/**
 * `vane login --oidc` as a public client: the device-authorization grant (RFC 8628) — the person
 * confirms a code in any browser, the CLI polls — or, when the provider lacks it, Authorization
 * Code with PKCE back to a one-shot loopback server (RFC 8252); and the refresh of a stored
 * session's ID token. oauth4webapi does the protocol checks.
 */
import * as http from "node:http";
import type { AddressInfo } from "node:net";
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

type Options = { oidcIssuer: string; oidcClientId: string; oidcScopes: string[] };

const sessionOf = (o: Options, tokens: oauth.TokenEndpointResponse): OidcSession => {
  if (!tokens.id_token) throw new UserError("the provider answered without an ID token; is the openid scope allowed for this client?");
  return {
    issuer: o.oidcIssuer,
    clientId: o.oidcClientId,
    idToken: tokens.id_token,
    idTokenExpiresAt: expiry(oauth.getValidatedIdTokenClaims(tokens)),
    refreshToken: tokens.refresh_token,
  };
};

/** Signs in at the provider the server names; `tell` shows the person where to go. */
export async function oidcLogin(url: string, tell: (text: string) => void): Promise<OidcSession> {
  const options = await createClient(AuthService, transportFor(url)).getSignInOptions({});
  if (!options.oidcIssuer) throw new UserError(`${url} has no OpenID Connect provider configured (VANE_OIDC_ISSUER); sign in with an API key`);
  const as = await discover(options.oidcIssuer);
  return as.device_authorization_endpoint ? deviceLogin(as, options, tell) : browserLogin(as, options, tell);
}

async function deviceLogin(as: oauth.AuthorizationServer, options: Options, tell: (text: string) => void): Promise<OidcSession> {
  const client: oauth.Client = { client_id: options.oidcClientId };
  const http = httpOptions(options.oidcIssuer);
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
      return sessionOf(
        options,
        await oauth.processDeviceCodeResponse(as, client, await oauth.deviceCodeGrantRequest(as, client, oauth.None(), started.device_code, http)),
      );
    } catch (err) {
      if (!(err instanceof oauth.ResponseBodyError)) throw err;
      if (err.error === "slow_down") interval += 5000;
      else if (err.error !== "authorization_pending")
        throw new UserError(`the provider refused the sign-in: ${err.error} ${err.error_description ?? ""}`.trim());
    }
  }
  throw new UserError("the sign-in code expired before it was confirmed; run vane login --oidc again");
}

async function browserLogin(as: oauth.AuthorizationServer, options: Options, tell: (text: string) => void): Promise<OidcSession> {
  if (!as.authorization_endpoint) throw new UserError(`the provider ${options.oidcIssuer} has no authorization_endpoint`);
  const client: oauth.Client = { client_id: options.oidcClientId };
  const verifier = oauth.generateRandomCodeVerifier();
  const state = oauth.generateRandomState();
  const nonce = oauth.generateRandomNonce();
  const server = http.createServer();
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  try {
    const redirectUri = `http://127.0.0.1:${(server.address() as AddressInfo).port}/callback`;
    const answer = new Promise<URL>((resolve) =>
      server.on("request", (req, res) => {
        const url = new URL(req.url ?? "/", redirectUri);
        if (url.pathname !== "/callback") return void res.writeHead(404).end();
        res.writeHead(200, { "content-type": "text/plain; charset=utf-8" }).end("Vane: signed in. You can close this tab and return to the terminal.\n");
        resolve(url);
      }),
    );
    const authorize = new URL(as.authorization_endpoint);
    authorize.search = new URLSearchParams({
      client_id: client.client_id,
      redirect_uri: redirectUri,
      response_type: "code",
      scope: options.oidcScopes.join(" "),
      code_challenge: await oauth.calculatePKCECodeChallenge(verifier),
      code_challenge_method: "S256",
      state,
      nonce,
      prompt: "consent",
    }).toString();
    tell(`To sign in, open ${authorize.href}\nWaiting for the provider to send you back…\n`);
    const params = oauth.validateAuthResponse(as, client, await answer, state);
    const res = await oauth.authorizationCodeGrantRequest(as, client, oauth.None(), params, redirectUri, verifier, httpOptions(options.oidcIssuer));
    return sessionOf(options, await oauth.processAuthorizationCodeResponse(as, client, res, { expectedNonce: nonce, requireIdToken: true }));
  } finally {
    server.closeAllConnections();
    server.close();
  }
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
