/**
 * Signing in to the console: an API key (the one-click link `npm start` prints carries it in the
 * URL fragment, which never reaches a server) is exchanged for an access token, kept for this tab
 * only (sessionStorage) and renewed a minute before it expires.
 */
import { createClient } from "@connectrpc/connect";
import { createConnectTransport } from "@connectrpc/connect-web";
import { timestampMs } from "@bufbuild/protobuf/wkt";
import { AuthService } from "#gen/vane/identity/v1/auth_service_pb.js";
import type { Principal } from "#gen/vane/identity/v1/identity_pb.js";

const STORAGE = "vane.console.session";

interface Stored {
  apiKey: string;
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

export async function signIn(apiKey: string): Promise<Principal | undefined> {
  const auth = createClient(AuthService, createConnectTransport({ baseUrl: location.origin }));
  const res = await auth.exchangeApiKey({ apiKey: apiKey.trim() });
  current = {
    apiKey: apiKey.trim(),
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
  const key = current.apiKey;
  renewal = setTimeout(() => void signIn(key).catch(() => signOut()), Math.max(5_000, current.expiresAt - Date.now() - 60_000));
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
