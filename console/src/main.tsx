/** The console's entry: sign-in, then the page the URL names. */
import { TransportProvider } from "@connectrpc/connect-query";
import { QueryClient, QueryClientProvider } from "@tanstack/react-query";
import { StrictMode, useEffect, useState } from "react";
import { createRoot } from "react-dom/client";
import { describeError, transport } from "./api.ts";
import { AuditPage } from "./pages/audit.tsx";
import { ExperimentPage } from "./pages/experiment.tsx";
import { ExperimentsPage } from "./pages/experiments.tsx";
import { FlagPage } from "./pages/flag.tsx";
import { FlagsPage } from "./pages/flags.tsx";
import { HomePage } from "./pages/home.tsx";
import { MetricsPage } from "./pages/metrics.tsx";
import { SegmentsPage } from "./pages/segments.tsx";
import { SettingsPage } from "./pages/settings.tsx";
import { useLiveChanges } from "./live.ts";
import { finishSignIn, isCallback, type Provider, startSignIn } from "./oidc.ts";
import { useRole } from "./role.ts";
import { href, type Route, SECTIONS, useRoute } from "./router.ts";
import { onSessionChange, signedIn, signIn, signInProvider, signInWithProvider, signOut, takeKeyFromUrl } from "./session.ts";
// uPlot's few rules (the results charts) ride in the one stylesheet: a lazy chunk's CSS would not be loaded.
import "uplot/dist/uPlot.min.css";
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

/** The project's pages, for every page inside a project. */
function ProjectNav({ route }: { route: Exclude<Route, { page: "home" }> }) {
  const at = { projectId: route.projectId, environmentId: route.environmentId };
  const current = route.page === "flag" ? "flags" : route.page === "experiment" ? "experiments" : route.page;
  const links = [
    { page: "flags" as const, label: "Flags" },
    { page: "experiments" as const, label: "Experiments" },
    ...SECTIONS.map((page) => ({ page, label: page[0].toUpperCase() + page.slice(1) })),
  ];
  return (
    <nav className="sections" aria-label="Project">
      {links.map((l) => (
        <a
          key={l.page}
          aria-current={l.page === current ? "page" : undefined}
          href={href(
            l.page === "flags"
              ? { page: "flags", ...at, query: "" }
              : l.page === "experiments"
                ? { page: "experiments", ...at, newForFlag: "" }
                : { page: l.page, ...at },
          )}
        >
          {l.label}
        </a>
      ))}
    </nav>
  );
}

/** Says so when the caller may only read (every control that changes something is hidden). */
function ReadOnlyBadge() {
  const { role, canEdit } = useRole();
  if (canEdit || !role) return null;
  return (
    <span className="badge" title="Your role can read everything but change nothing">
      read-only (viewer)
    </span>
  );
}

function App() {
  const route = useRoute();
  const [, setTick] = useState(0);
  const [linkError, setLinkError] = useState<string>();
  useEffect(() => onSessionChange(() => setTick((t) => t + 1)), []);
  useLiveChanges(signedIn() && route.page !== "home" ? route.projectId : undefined);
  useEffect(() => {
    // The link's key arrives with the page, or later when the link is opened in a tab already
    // showing the console; a provider's answer arrives with the page (the callback address).
    const take = () => {
      const key = takeKeyFromUrl();
      if (key) signIn(key).catch((err: unknown) => setLinkError(`The sign-in link did not work: ${describeError(err)}`));
      return key !== undefined;
    };
    if (!take() && isCallback()) {
      finishSignIn()
        .then(({ provider, tokens }) => signInWithProvider(provider, tokens))
        .catch((err: unknown) => setLinkError(`Signing in with the provider did not work: ${describeError(err)}`));
    }
    addEventListener("hashchange", take);
    return () => removeEventListener("hashchange", take);
  }, []);
  if (!signedIn()) return <SignIn error={linkError} />;
  return (
    <>
      <header className="top">
        <a href="#/" className="brand">
          Vane
        </a>
        {route.page !== "home" && <ProjectNav route={route} />}
        <ReadOnlyBadge />
        <button className="link" onClick={() => signOut()}>
          Sign out
        </button>
      </header>
      {route.page === "home" && <HomePage />}
      {route.page === "flags" && <FlagsPage route={route} />}
      {route.page === "flag" && <FlagPage route={route} />}
      {route.page === "experiments" && <ExperimentsPage route={route} />}
      {route.page === "experiment" && <ExperimentPage route={route} />}
      {route.page === "metrics" && <MetricsPage route={route} />}
      {route.page === "segments" && <SegmentsPage route={route} />}
      {route.page === "audit" && <AuditPage route={route} />}
      {route.page === "settings" && <SettingsPage route={route} />}
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
