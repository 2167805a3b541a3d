/**
 * OpenID Connect in the browser: Authorization Code with PKCE (S256), state and nonce, as a public
 * client (no secret). oauth4webapi does the protocol checks; this file keeps what must survive the
 * round trip to the provider (in sessionStorage: this tab only) and hands back an ID token.
 */
import * as oauth from "oauth4webapi";

/** The provider and Vane's client there, as AuthService.GetSignInOptions tells them. */
export interface Provider {
  issuer: string;
  clientId: string;
  scopes: string[];
}

/** What the provider's token endpoint answered that the session needs. */
export interface ProviderTokens {
  idToken: string;
  refreshToken?: string;
}

const PENDING = "vane.console.oidc-pending";

interface Pending {
  provider: Provider;
  verifier: string;
  state: string;
  nonce: string;
}

// A plain-http issuer is only accepted because an operator configured it (a loopback test provider).
const httpOptions = (issuer: string) => (new URL(issuer).protocol === "http:" ? { [oauth.allowInsecureRequests]: true } : {});

async function discover(p: Provider): Promise<oauth.AuthorizationServer> {
  const issuer = new URL(p.issuer);
  const res = await oauth.discoveryRequest(issuer, { algorithm: "oidc", ...httpOptions(p.issuer) });
  return oauth.processDiscoveryResponse(issuer, res);
}

// The console's own page, without the callback's query: the redirect URI registered at the provider.
const redirectUri = () => `${location.origin}${location.pathname}`;

/** Sends the browser to the provider's sign-in page. */
export async function startSignIn(provider: Provider): Promise<never> {
  const as = await discover(provider);
  if (!as.authorization_endpoint) throw new Error("the provider's discovery document has no authorization_endpoint");
  const pending: Pending = { provider, verifier: oauth.generateRandomCodeVerifier(), state: oauth.generateRandomState(), nonce: oauth.generateRandomNonce() };
  sessionStorage.setItem(PENDING, JSON.stringify(pending));
  const url = new URL(as.authorization_endpoint);
  url.search = new URLSearchParams({
    client_id: provider.clientId,
    redirect_uri: redirectUri(),
    response_type: "code",
    scope: provider.scopes.join(" "),
    code_challenge: await oauth.calculatePKCECodeChallenge(pending.verifier),
    code_challenge_method: "S256",
    state: pending.state,
    nonce: pending.nonce,
    // offline_access (a refresh token) is only granted on consent; ask for it.
    prompt: "consent",
  }).toString();
  location.assign(url);
  return new Promise<never>(() => {});
}

/** The provider's answer in the address bar (`?code=…&state=…` or `?error=…`), if this page load is one. */
export function isCallback(): boolean {
  const q = new URLSearchParams(location.search);
  return (q.has("code") || q.has("error")) && q.has("state") && sessionStorage.getItem(PENDING) !== null;
}

/** Completes a sign-in the provider sent back: checks state, redeems the code with the PKCE verifier, checks the nonce. */
export async function finishSignIn(): Promise<{ provider: Provider; tokens: ProviderTokens }> {
  const pending = JSON.parse(sessionStorage.getItem(PENDING) ?? "null") as Pending | null;
  const answer = new URL(location.href);
  sessionStorage.removeItem(PENDING);
  history.replaceState(null, "", `${location.pathname}#/`);
  if (!pending) throw new Error("no sign-in was in progress in this tab; sign in again");
  const as = await discover(pending.provider);
  const client: oauth.Client = { client_id: pending.provider.clientId };
  const params = oauth.validateAuthResponse(as, client, answer, pending.state);
  const res = await oauth.authorizationCodeGrantRequest(
    as,
    client,
    oauth.None(),
    params,
    redirectUri(),
    pending.verifier,
    httpOptions(pending.provider.issuer),
  );
  const tokens = await oauth.processAuthorizationCodeResponse(as, client, res, { expectedNonce: pending.nonce, requireIdToken: true });
  return { provider: pending.provider, tokens: { idToken: tokens.id_token!, refreshToken: tokens.refresh_token } };
}

/** A fresh ID token for a refresh token, without sending the person anywhere. */
export async function refresh(provider: Provider, refreshToken: string): Promise<ProviderTokens> {
  const as = await discover(provider);
  const client: oauth.Client = { client_id: provider.clientId };
  const res = await oauth.refreshTokenGrantRequest(as, client, oauth.None(), refreshToken, httpOptions(provider.issuer));
  const tokens = await oauth.processRefreshTokenResponse(as, client, res);
  if (!tokens.id_token) throw new Error("the provider's refresh answer has no ID token");
  return { idToken: tokens.id_token, refreshToken: tokens.refresh_token ?? refreshToken };
}
