/** import flagd FILE / export flagd: flagd flag-definition files. */
import { readFile } from "node:fs/promises";
import type { Command } from "commander";
import { FlagService, ImportMode } from "#gen/vane/flags/v1/flag_service_pb.js";
import { UserError } from "../errors.ts";
import { emit, parseFormat, progress } from "../output.ts";
import { openSession, type GlobalOptions } from "../session.ts";

export async function importFlagd(cmd: Command): Promise<void> {
  const opts = cmd.optsWithGlobals<GlobalOptions & { env?: string; replace?: boolean; reason: string }>();
  const format = parseFormat(opts.output);
  const path = cmd.args[0];
  let flagdJson: string;
  try {
    flagdJson = await readFile(path, "utf8");
  } catch {
    throw new UserError(`${path}: cannot read the file`);
  }
  try {
    JSON.parse(flagdJson);
  } catch (err) {
    throw new UserError(`${path}: not JSON (${(err as Error).message})`);
  }
  const session = await openSession(opts);
  const env = await session.environment(opts.env);
  progress(`Importing ${path} into ${env.key}…`);
  const res = await session
    .client(FlagService)
    .importFlagd({ environmentId: env.id, flagdJson, mode: opts.replace ? ImportMode.REPLACE : ImportMode.MERGE, reason: opts.reason });
  const data = {
    environment: env.key,
    created: res.createdFlagKeys,
    updated: res.updatedFlagKeys,
    disabled: res.disabledFlagKeys,
    configVersion: Number(res.configVersion),
  };
  await emit(format, data, () =>
    process.stdout.write(`Imported into ${env.key}: ${data.created.length} created, ${data.updated.length} updated, ${data.disabled.length} disabled\n`),
  );
}

export async function exportFlagd(cmd: Command): Promise<void> {
  const opts = cmd.optsWithGlobals<GlobalOptions & { env?: string }>();
  const session = await openSession(opts);
  const env = await session.environment(opts.env);
  const res = await session.client(FlagService).exportFlagd({ environmentId: env.id });
  for (const s of res.skipped) process.stderr.write(`skipped: ${s}\n`);
  // The file itself, whatever -o says: it is already a format.
  process.stdout.write(res.flagdJson.endsWith("\n") ? res.flagdJson : `${res.flagdJson}\n`);
}
