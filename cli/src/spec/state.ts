/** What the server holds for a project, read for diff, apply and pull (every flag with its targeting). */
import { FlagService } from "#gen/vane/flags/v1/flag_service_pb.js";
import { SegmentService } from "#gen/vane/flags/v1/segment_service_pb.js";
import type { Flag, FlagEnvironment, Segment } from "#gen/vane/flags/v1/flags_pb.js";
import type { Environment, Project } from "#gen/vane/identity/v1/identity_pb.js";
import type { Session } from "../session.ts";

export interface ServerFlag {
  flag: Flag;
  /** By environment key. */
  environments: Map<string, FlagEnvironment>;
}

export interface ServerState {
  project: Project;
  environments: Environment[];
  flags: Map<string, ServerFlag>;
  segments: Map<string, Segment>;
}

const CONCURRENCY = 8;

export async function readState(session: Session): Promise<ServerState> {
  const project = await session.project();
  const environments = await session.environments();
  const envKeys = new Map(environments.map((e) => [e.id, e.key]));
  const flagsApi = session.client(FlagService);
  const listed: Flag[] = [];
  let pageToken = "";
  do {
    const page = await flagsApi.listFlags({ projectId: project.id, includeArchived: true, pageSize: 200, pageToken });
    listed.push(...page.flags);
    pageToken = page.nextPageToken;
  } while (pageToken);
  const flags = new Map<string, ServerFlag>();
  // Each flag's targeting (rules included) comes with GetFlag; a few at a time.
  for (let i = 0; i < listed.length; i += CONCURRENCY) {
    const batch = await Promise.all(listed.slice(i, i + CONCURRENCY).map((f) => flagsApi.getFlag({ projectId: project.id, key: f.key })));
    for (const got of batch) {
      const envs = new Map<string, FlagEnvironment>();
      for (const e of got.environments) if (envKeys.has(e.environmentId)) envs.set(envKeys.get(e.environmentId)!, e);
      flags.set(got.flag!.key, { flag: got.flag!, environments: envs });
    }
  }
  const { segments } = await session.client(SegmentService).listSegments({ projectId: project.id });
  return { project, environments, flags, segments: new Map(segments.map((s) => [s.key, s])) };
}
