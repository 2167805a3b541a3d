/**
 * Signing in to the console: an API key (the one-click link `npm start` prints carries it in the
 * URL fragment, which never reaches a server) or an ID token from the OpenID Connect provider is
 * exchanged for an access token, kept for this tab only (sessionStorage) and renewed a minute
 * before it expires — with the key, or with the provider's refresh token; without one the person
 * is asked to sign in again.
 */
import { createClient } from "@connectrpc/connect";
import { createConnectTransport } from "@connectrpc/connect-web";
import { timestampMs } from "@bufbuild/protobuf/wkt";
import { AuthService } from "#gen/vane/identity/v1/auth_service_pb.js";
import type { Principal } from "#gen/vane/identity/v1/identity_pb.js";
import { refresh, type Provider, type ProviderTokens } from "./oidc.ts";

const STORAGE = "vane.console.session";

/** How the session renews itself. */
type Renewal = { apiKey: string } | { provider: Provider; refreshToken?: string };

interface Stored {
  renewal: Renewal;
  token: string;
  expiresAt: number;
  organizationId: string;
}

let current: Stored | undefined = load();
let renewal: ReturnType<typeof setTimeout> | undefined;
const listeners = new Set<() => void>();

function load(): Stored | undefined {
  try {
    const s = JSON.parse(sessionStorage.getItem(STORAGE) ?? "null") as Stored | null;
    return s && s.expiresAt > Date.now() ? s : undefined;
  } catch {
    return undefined;
  }
}

/** The key of a one-click sign-in link (`#key=…`), removed from the address bar at once. */
export function takeKeyFromUrl(): string | undefined {
  const m = /^#key=([^&]+)/.exec(location.hash);
  if (!m) return undefined;
  history.replaceState(null, "", `${location.pathname}${location.search}#/`);
  return decodeURIComponent(m[1]);
}

const auth = () => createClient(AuthService, createConnectTransport({ baseUrl: location.origin }));

/** The provider people sign in with, or undefined when Vane has none configured. */
export async function signInProvider(): Promise<Provider | undefined> {
  const o = await auth().getSignInOptions({});
  return o.oidcIssuer ? { issuer: o.oidcIssuer, clientId: o.oidcClientId, scopes: o.oidcScopes } : undefined;
}

export async function signIn(apiKey: string): Promise<Principal | undefined> {
  return start({ apiKey: apiKey.trim() }, await auth().exchangeApiKey({ apiKey: apiKey.trim() }));
}

/** Signs in with the provider's tokens (after the redirect back, or a refresh). */
export async function signInWithProvider(provider: Provider, tokens: ProviderTokens): Promise<Principal | undefined> {
  const res = await auth().exchangeOidcToken({ idToken: tokens.idToken, organizationId: current?.organizationId ?? "" });
  return start({ provider, refreshToken: tokens.refreshToken }, res);
}

async function renew(r: Renewal): Promise<unknown> {
  if ("apiKey" in r) return signIn(r.apiKey);
  if (!r.refreshToken) throw new Error("no refresh token: sign in again");
  return signInWithProvider(r.provider, await refresh(r.provider, r.refreshToken));
}

function start(renewal: Renewal, res: { accessToken: string; expireTime?: Parameters<typeof timestampMs>[0]; principal?: Principal }) {
  current = {
    renewal,
    token: res.accessToken,
    expiresAt: res.expireTime ? timestampMs(res.expireTime) : Date.now() + 5 * 60_000,
    organizationId: res.principal?.organizationId ?? "",
  };
  sessionStorage.setItem(STORAGE, JSON.stringify(current));
  scheduleRenewal();
  for (const l of listeners) l();
  return res.principal;
}

function scheduleRenewal() {
  if (renewal) clearTimeout(renewal);
  if (!current) return;
  const r = current.renewal;
  renewal = setTimeout(() => void renew(r).catch(() => signOut()), Math.max(5_000, current.expiresAt - Date.now() - 60_000));
}

export function signOut(): void {
  current = undefined;
  sessionStorage.removeItem(STORAGE);
  if (renewal) clearTimeout(renewal);
  for (const l of listeners) l();
}

export const token = (): string | undefined => current?.token;
export const organizationId = (): string | undefined => current?.organizationId;
export const signedIn = (): boolean => current !== undefined;
export function onSessionChange(l: () => void): () => void {
  listeners.add(l);
  return () => listeners.delete(l);
}
if (current) scheduleRenewal();
