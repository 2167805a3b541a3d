/**
 * Where the console is, in the URL's hash so every page can be bookmarked and shared:
 *   #/                                  choose an organization's project and environment
 *   #/p/<project>/e/<environment>/flags           the flags list (?q=&type=&tag=&state=&archived= filter it)
 *   #/p/<project>/e/<environment>/flags/<key>     one flag
 *   #/p/<project>/e/<environment>/experiments?flag=<key>   the experiments (a flag's key opens "New experiment" for it)
 *   #/p/<project>/e/<environment>/experiments/<id>         one experiment and its results
 *   #/p/<project>/e/<environment>/metrics         the project's metrics
 *   #/p/<project>/e/<environment>/segments        the project's segments
 *   #/p/<project>/e/<environment>/audit           the project's audit feed
 *   #/p/<project>/e/<environment>/settings        environments, API keys, members, organization
 * (every project page keeps the environment, so going back to the flags lands where one was)
 */
import { useEffect, useState } from "react";

export type Route =
  | { page: "home" }
  | { page: "flags"; projectId: string; environmentId: string; query: string; filter?: FlagFilter }
  | { page: "flag"; projectId: string; environmentId: string; flagKey: string }
  | { page: "experiments"; projectId: string; environmentId: string; newForFlag: string }
  | { page: "experiment"; projectId: string; environmentId: string; experimentId: string }
  | { [S in ProjectSection]: { page: S; projectId: string; environmentId: string } }[ProjectSection];

/** The flags list's filters ("" for none): type, a tag, on/off in the route's environment, archived ones. */
export interface FlagFilter {
  type: "" | "boolean" | "string" | "number" | "object";
  tag: string;
  state: "" | "on" | "off";
  archived: "" | "include" | "only";
}
export const NO_FILTER: FlagFilter = { type: "", tag: "", state: "", archived: "" };
const FILTER_VALUES: { [K in keyof FlagFilter]: readonly string[] | undefined } = {
  type: ["boolean", "string", "number", "object"],
  tag: undefined,
  state: ["on", "off"],
  archived: ["include", "only"],
};

function parseFilter(params: URLSearchParams): FlagFilter {
  const f = { ...NO_FILTER };
  for (const k of Object.keys(FILTER_VALUES) as (keyof FlagFilter)[]) {
    const v = params.get(k) ?? "";
    const allowed = FILTER_VALUES[k];
    if (v !== "" && (!allowed || allowed.includes(v))) (f as Record<string, string>)[k] = v;
  }
  return f;
}

/** The project pages besides flags, named as their address says. */
export const SECTIONS = ["metrics", "segments", "audit", "settings"] as const;
export type ProjectSection = (typeof SECTIONS)[number];
const isSection = (s: string | undefined): s is ProjectSection => SECTIONS.includes(s as ProjectSection);

export function parseRoute(hash: string): Route {
  const [path, search = ""] = hash.replace(/^#/, "").split("?");
  const parts = path.split("/").filter(Boolean).map(decodeURIComponent);
  if (parts[0] === "p" && parts[2] === "e" && parts[4] === "flags") {
    if (parts[5]) return { page: "flag", projectId: parts[1], environmentId: parts[3], flagKey: parts[5] };
    const params = new URLSearchParams(search);
    return { page: "flags", projectId: parts[1], environmentId: parts[3], query: params.get("q") ?? "", filter: parseFilter(params) };
  }
  if (parts[0] === "p" && parts[2] === "e" && parts[4] === "experiments") {
    if (parts[5]) return { page: "experiment", projectId: parts[1], environmentId: parts[3], experimentId: parts[5] };
    return { page: "experiments", projectId: parts[1], environmentId: parts[3], newForFlag: new URLSearchParams(search).get("flag") ?? "" };
  }
  if (parts[0] === "p" && parts[2] === "e" && isSection(parts[4])) return { page: parts[4], projectId: parts[1], environmentId: parts[3] };
  return { page: "home" };
}

export function href(route: Route): string {
  const e = encodeURIComponent;
  switch (route.page) {
    case "home":
      return "#/";
    case "flags": {
      const params = new URLSearchParams();
      if (route.query) params.set("q", route.query);
      for (const [k, v] of Object.entries(route.filter ?? NO_FILTER)) if (v) params.set(k, v);
      const search = params.toString();
      return `#/p/${e(route.projectId)}/e/${e(route.environmentId)}/flags${search ? `?${search}` : ""}`;
    }
    case "flag":
      return `#/p/${e(route.projectId)}/e/${e(route.environmentId)}/flags/${e(route.flagKey)}`;
    case "experiments":
      return `#/p/${e(route.projectId)}/e/${e(route.environmentId)}/experiments${route.newForFlag ? `?flag=${e(route.newForFlag)}` : ""}`;
    case "experiment":
      return `#/p/${e(route.projectId)}/e/${e(route.environmentId)}/experiments/${e(route.experimentId)}`;
    default:
      return `#/p/${e(route.projectId)}/e/${e(route.environmentId)}/${route.page}`;
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
