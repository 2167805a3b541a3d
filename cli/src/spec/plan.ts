/**
 * The changes that make the server match the files, in the order apply makes them: segments
 * first (flags refer to them), then each flag (unarchive, definition, targeting per environment),
 * then what --prune removes. Each change carries the before/after shapes for the diff.
 */
import { isDeepStrictEqual } from "node:util";
import { UserError } from "../errors.ts";
import type { LoadedSpec } from "./load.ts";
import {
  environmentToSpec,
  flagToSpec,
  normalizeEnvironment,
  normalizeFlag,
  normalizeSegment,
  segmentToSpec,
  type EnvironmentSpec,
  type FlagSpec,
} from "./model.ts";
import type { ServerState } from "./state.ts";

export type Action = "create" | "update" | "archive" | "unarchive" | "delete";

export interface Change {
  action: Action;
  kind: "flag" | "targeting" | "segment";
  key: string;
  environment?: string;
  before: unknown;
  after: unknown;
}

type Definition = Omit<FlagSpec, "environments">;
const definition = ({ environments: _, ...rest }: FlagSpec): Definition => rest;
const DISABLED: EnvironmentSpec = { enabled: false };

export function plan(loaded: LoadedSpec, state: ServerState, prune: boolean): Change[] {
  const changes: Change[] = [];
  const envKeys = new Map(state.environments.map((e) => [e.id, e.key]));

  for (const [key, seg] of Object.entries(loaded.spec.segments)) {
    const want = normalizeSegment(key, seg);
    const have = state.segments.get(key);
    if (!have) changes.push({ action: "create", kind: "segment", key, before: null, after: want });
    else if (!isDeepStrictEqual(segmentToSpec(have), want)) changes.push({ action: "update", kind: "segment", key, before: segmentToSpec(have), after: want });
  }

  for (const [key, raw] of Object.entries(loaded.spec.flags)) {
    const want = normalizeFlag(key, raw);
    const have = state.flags.get(key);
    const current = have ? flagToSpec(have.flag, [...have.environments.values()], envKeys) : undefined;
    if (!have) changes.push({ action: "create", kind: "flag", key, before: null, after: definition(want) });
    else {
      if (current!.type !== want.type)
        throw new UserError(
          `${loaded.where([key, "type"], "flags")}: flags.${key}.type: is ${current!.type} on the server; a flag's type cannot change (archive it and create another key)`,
        );
      if (have.flag.archived) changes.push({ action: "unarchive", kind: "flag", key, before: null, after: null });
      if (!isDeepStrictEqual(definition(current!), definition(want)))
        changes.push({ action: "update", kind: "flag", key, before: definition(current!), after: definition(want) });
    }
    for (const [env, target] of Object.entries(want.environments ?? {})) {
      const server = have?.environments.get(env);
      const before = server && server.version > 0n ? normalizeEnvironment(environmentToSpec(server)) : DISABLED;
      if (!isDeepStrictEqual(before, target)) changes.push({ action: "update", kind: "targeting", key, environment: env, before, after: target });
    }
  }

  if (prune) {
    for (const [key, have] of state.flags)
      if (!have.flag.archived && !(key in loaded.spec.flags)) changes.push({ action: "archive", kind: "flag", key, before: null, after: null });
    for (const [key, have] of state.segments)
      if (!(key in loaded.spec.segments)) changes.push({ action: "delete", kind: "segment", key, before: segmentToSpec(have), after: null });
  }
  return changes;
}
