/**
 * A real OpenID Connect provider (the `oidc-provider` package, certified) on a free loopback port
 * for end-to-end sign-in tests: one public client with PKCE, refresh tokens and the device grant,
 * and its built-in sign-in pages, where any login and password sign in as one person.
 */
import * as http from "node:http";
import type { AddressInfo } from "node:net";
import Provider from "oidc-provider";

/** Vane's client id at the test provider. */
export const TEST_CLIENT_ID = "vane-console";

/** A running test provider. */
export interface TestProvider {
  issuer: string;
  close(): Promise<void>;
}

/** Starts a provider whose only account is `email` (verified); `deviceFlow: false` leaves the device grant out. */
export async function startTestProvider(email: string, { deviceFlow = true } = {}): Promise<TestProvider> {
  const server = http.createServer();
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  const issuer = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  const provider = new Provider(issuer, {
    clients: [
      {
        client_id: TEST_CLIENT_ID,
        // Native: a loopback redirect matches whatever port Vane (or the CLI) listens on (RFC 8252).
        application_type: "native",
        token_endpoint_auth_method: "none",
        redirect_uris: ["http://127.0.0.1/", "http://127.0.0.1/callback"],
        grant_types: ["authorization_code", "refresh_token", ...(deviceFlow ? ["urn:ietf:params:oauth:grant-type:device_code"] : [])],
        response_types: ["code"],
      },
    ],
    claims: { email: ["email", "email_verified"] },
    // Vane reads the email from the ID token itself, not from userinfo.
    conformIdTokenClaims: false,
    features: { deviceFlow: { enabled: deviceFlow } },
    // The console calls the token endpoint from its own origin.
    clientBasedCORS: () => true,
    cookies: { keys: ["test-only-cookie-key"] },
    findAccount: (_ctx, sub) => ({ accountId: sub, claims: () => ({ sub, email, email_verified: true }) }),
  });
  server.on("request", provider.callback());
  return { issuer, close: () => new Promise((r) => server.close(() => r())) };
}
