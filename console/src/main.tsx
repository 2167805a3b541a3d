/** The console's entry: sign-in, then the page the URL names. */
import { TransportProvider } from "@connectrpc/connect-query";
import { QueryClient, QueryClientProvider } from "@tanstack/react-query";
import { StrictMode, useEffect, useState } from "react";
import { createRoot } from "react-dom/client";
import { describeError, transport } from "./api.ts";
import { ExperimentPage } from "./pages/experiment.tsx";
import { ExperimentsPage } from "./pages/experiments.tsx";
import { FlagPage } from "./pages/flag.tsx";
import { FlagsPage } from "./pages/flags.tsx";
import { HomePage } from "./pages/home.tsx";
import { MetricsPage } from "./pages/metrics.tsx";
import { useLiveChanges } from "./live.ts";
import { href, useRoute } from "./router.ts";
import { onSessionChange, signedIn, signIn, signOut, takeKeyFromUrl } from "./session.ts";
// uPlot's few rules (the results charts) ride in the one stylesheet: a lazy chunk's CSS would not be loaded.
import "uplot/dist/uPlot.min.css";
import "./styles.css";

const queryClient = new QueryClient({ defaultOptions: { queries: { retry: 1, refetchOnWindowFocus: true } } });

function SignIn({ error }: { error?: string }) {
  const [key, setKey] = useState("");
  const [problem, setProblem] = useState<string>();
  return (
    <main className="signin">
      <h1>Vane</h1>
      <p>
        Open the sign-in link <code>npm start</code> printed, or paste an API key. With an OpenID Connect provider configured, your organization signs in
        through it.
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
  }, []);
  if (!signedIn()) return <SignIn error={linkError} />;
  return (
    <>
      <header className="top">
        <a href="#/" className="brand">
          Vane
        </a>
        {route.page !== "home" && (
          <nav className="sections" aria-label="Sections">
            <a href={href({ page: "flags", projectId: route.projectId, environmentId: route.environmentId, query: "" })}>Flags</a>
            <a href={href({ page: "experiments", projectId: route.projectId, environmentId: route.environmentId, newForFlag: "" })}>Experiments</a>
            <a href={href({ page: "metrics", projectId: route.projectId, environmentId: route.environmentId })}>Metrics</a>
          </nav>
        )}
        <button className="link" onClick={() => signOut()}>
          Sign out
        </button>
      </header>
      {route.page === "home" && <HomePage />}
      {route.page === "flags" && <FlagsPage route={route} />}
      {route.page === "flag" && <FlagPage route={route} />}
      {route.page === "metrics" && <MetricsPage route={route} />}
      {route.page === "experiments" && <ExperimentsPage route={route} />}
      {route.page === "experiment" && <ExperimentPage route={route} />}
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
