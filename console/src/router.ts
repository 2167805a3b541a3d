/**
 * Where the console is, in the URL's hash so every page can be bookmarked and shared:
 *   #/                                  choose an organization's project and environment
 *   #/p/<project>/e/<environment>/flags           the flags list
 *   #/p/<project>/e/<environment>/flags/<key>     one flag
 *   #/p/<project>/e/<environment>/metrics         the project's metrics
 *   #/p/<project>/e/<environment>/experiments?flag=<key>   the experiments (a flag's key opens "New experiment" for it)
 *   #/p/<project>/e/<environment>/experiments/<id>         one experiment and its results
 */
import { useEffect, useState } from "react";

export type Route =
  | { page: "home" }
  | { page: "flags"; projectId: string; environmentId: string; query: string }
  | { page: "flag"; projectId: string; environmentId: string; flagKey: string }
  | { page: "metrics"; projectId: string; environmentId: string }
  | { page: "experiments"; projectId: string; environmentId: string; newForFlag: string }
  | { page: "experiment"; projectId: string; environmentId: string; experimentId: string };

export function parseRoute(hash: string): Route {
  const [path, search = ""] = hash.replace(/^#/, "").split("?");
  const parts = path.split("/").filter(Boolean).map(decodeURIComponent);
  if (parts[0] === "p" && parts[2] === "e" && parts[4] === "flags") {
    if (parts[5]) return { page: "flag", projectId: parts[1], environmentId: parts[3], flagKey: parts[5] };
    return { page: "flags", projectId: parts[1], environmentId: parts[3], query: new URLSearchParams(search).get("q") ?? "" };
  }
  if (parts[0] === "p" && parts[2] === "e" && parts[4] === "metrics") return { page: "metrics", projectId: parts[1], environmentId: parts[3] };
  if (parts[0] === "p" && parts[2] === "e" && parts[4] === "experiments") {
    if (parts[5]) return { page: "experiment", projectId: parts[1], environmentId: parts[3], experimentId: parts[5] };
    return { page: "experiments", projectId: parts[1], environmentId: parts[3], newForFlag: new URLSearchParams(search).get("flag") ?? "" };
  }
  return { page: "home" };
}

export function href(route: Route): string {
  const e = encodeURIComponent;
  switch (route.page) {
    case "home":
      return "#/";
    case "flags":
      return `#/p/${e(route.projectId)}/e/${e(route.environmentId)}/flags${route.query ? `?q=${e(route.query)}` : ""}`;
    case "flag":
      return `#/p/${e(route.projectId)}/e/${e(route.environmentId)}/flags/${e(route.flagKey)}`;
    case "metrics":
      return `#/p/${e(route.projectId)}/e/${e(route.environmentId)}/metrics`;
    case "experiments":
      return `#/p/${e(route.projectId)}/e/${e(route.environmentId)}/experiments${route.newForFlag ? `?flag=${e(route.newForFlag)}` : ""}`;
    case "experiment":
      return `#/p/${e(route.projectId)}/e/${e(route.environmentId)}/experiments/${e(route.experimentId)}`;
  }
}

export function useRoute(): Route {
  const [route, setRoute] = useState(() => parseRoute(location.hash));
  useEffect(() => {
    const on = () => setRoute(parseRoute(location.hash));
    addEventListener("hashchange", on);
    return () => removeEventListener("hashchange", on);
  }, []);
  return route;
}

/** Environments in a stable order (by name), whatever order the API lists them in. */
export const byName = <T extends { name: string; key: string }>(xs: readonly T[]): T[] =>
  [...xs].sort((a, b) => (a.name || a.key).localeCompare(b.name || b.key));
