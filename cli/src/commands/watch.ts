/** watch: the project's change stream (ChangeService.WatchChanges) until Ctrl-C or the server ends it. */
import type { Command } from "commander";
import { ChangeKind, ChangeService } from "#gen/vane/flags/v1/change_service_pb.js";
import { paint, parseFormat } from "../output.ts";
import { openSession, type GlobalOptions } from "../session.ts";
import { enumName, iso } from "../shapes.ts";

export async function watch(cmd: Command): Promise<void> {
  const opts = cmd.optsWithGlobals<GlobalOptions>();
  const format = parseFormat(opts.output);
  const session = await openSession(opts);
  const project = await session.project();
  const envs = new Map((await session.environments()).map((e) => [e.id, e.key]));
  process.stderr.write(`Watching project ${project.key} (Ctrl-C stops)\n`);
  const stream = session.client(ChangeService).watchChanges({ projectId: project.id });
  for await (const res of stream) {
    if (res.resyncRequired) process.stderr.write(`${paint("yellow", "some changes were missed: re-read the project", process.stderr)}\n`);
    for (const c of res.changes) {
      const data = {
        sequence: Number(c.sequence),
        time: iso(c.commitTime),
        kind: enumName(ChangeKind, c.kind),
        flagKey: c.flagKey || null,
        segmentKey: c.segmentKey || null,
        environment: c.environmentId ? (envs.get(c.environmentId) ?? c.environmentId) : null,
        actor: c.actor,
        auditEntryId: Number(c.auditEntryId) || null,
      };
      if (format === "table")
        process.stdout.write(
          `${paint("dim", data.time ?? "")}  ${data.kind.padEnd(17)} ${data.flagKey ?? data.segmentKey ?? ""}${data.environment ? ` in ${data.environment}` : ""}  ${paint("dim", data.actor)}\n`,
        );
      // One JSON object per line, so `vane watch -o json | jq` streams.
      else process.stdout.write(`${JSON.stringify(data)}\n`);
    }
  }
}
