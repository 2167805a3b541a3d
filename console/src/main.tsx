/** The console's entry: sign-in, then the page the URL names. */
import { TransportProvider } from "@connectrpc/connect-query";
import { QueryClient, QueryClientProvider } from "@tanstack/react-query";
import { StrictMode, useEffect, useState } from "react";
import { createRoot } from "react-dom/client";
import { describeError, transport } from "./api.ts";
import { FlagPage } from "./pages/flag.tsx";
import { FlagsPage } from "./pages/flags.tsx";
import { HomePage } from "./pages/home.tsx";
import { useLiveChanges } from "./live.ts";
import { useRoute } from "./router.ts";
import { finishSignIn, isCallback, type Provider, startSignIn } from "./oidc.ts";
import { onSessionChange, signedIn, signIn, signInProvider, signInWithProvider, signOut, takeKeyFromUrl } from "./session.ts";
import "./styles.css";

const queryClient = new QueryClient({ defaultOptions: { queries: { retry: 1, refetchOnWindowFocus: true } } });

function SignIn({ error }: { error?: string }) {
  const [key, setKey] = useState("");
  const [problem, setProblem] = useState<string>();
  const [provider, setProvider] = useState<Provider>();
  useEffect(() => {
    signInProvider().then(setProvider, (err: unknown) => setProblem(describeError(err)));
  }, []);
  return (
    <main className="signin">
      <h1>Vane</h1>
      {provider && (
        <button className="provider" onClick={() => startSignIn(provider).catch((err: unknown) => setProblem(describeError(err)))}>
          Sign in with {new URL(provider.issuer).host}
        </button>
      )}
      <p>
        {provider ? "Or open" : "Open"} the sign-in link <code>npm start</code> printed, or paste an API key.
      </p>
      <form
        onSubmit={(e) => {
          e.preventDefault();
          signIn(key).catch((err: unknown) => setProblem(describeError(err)));
        }}
      >
        <label htmlFor="key">API key</label>
        <input id="key" type="password" autoComplete="off" value={key} onChange={(e) => setKey(e.target.value)} placeholder="vane_personal_…" />
        <button type="submit" disabled={!key.trim()}>
          Sign in
        </button>
      </form>
      {(problem ?? error) && (
        <p role="alert" className="error">
          {problem ?? error}
        </p>
      )}
    </main>
  );
}

function App() {
  const route = useRoute();
  const [, setTick] = useState(0);
  const [linkError, setLinkError] = useState<string>();
  useEffect(() => onSessionChange(() => setTick((t) => t + 1)), []);
  useLiveChanges(signedIn() && route.page !== "home" ? route.projectId : undefined);
  useEffect(() => {
    const key = takeKeyFromUrl();
    if (key) signIn(key).catch((err: unknown) => setLinkError(`The sign-in link did not work: ${describeError(err)}`));
    else if (isCallback()) {
      finishSignIn()
        .then(({ provider, tokens }) => signInWithProvider(provider, tokens))
        .catch((err: unknown) => setLinkError(`Signing in with the provider did not work: ${describeError(err)}`));
    }
  }, []);
  if (!signedIn()) return <SignIn error={linkError} />;
  return (
    <>
      <header className="top">
        <a href="#/" className="brand">
          Vane
        </a>
        <button className="link" onClick={() => signOut()}>
          Sign out
        </button>
      </header>
      {route.page === "home" && <HomePage />}
      {route.page === "flags" && <FlagsPage route={route} />}
      {route.page === "flag" && <FlagPage route={route} />}
    </>
  );
}

createRoot(document.getElementById("root")!).render(
  <StrictMode>
    <TransportProvider transport={transport}>
      <QueryClientProvider client={queryClient}>
        <App />
      </QueryClientProvider>
    </TransportProvider>
  </StrictMode>,
);
