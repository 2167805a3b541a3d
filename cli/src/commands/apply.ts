/** Flags as code: diff, apply, pull. */
import { writeFile } from "node:fs/promises";
import type { Command } from "commander";
import { Code, ConnectError } from "@connectrpc/connect";
import { stringify } from "yaml";
import { FlagService } from "#gen/vane/flags/v1/flag_service_pb.js";
import { SegmentService } from "#gen/vane/flags/v1/segment_service_pb.js";
import { FlagType } from "#gen/vane/flags/v1/flags_pb.js";
import { fromJson } from "@bufbuild/protobuf";
import { ValueSchema } from "@bufbuild/protobuf/wkt";
import { codeName } from "../describe.ts";
import { EXIT_DIFF, UsageError, UserError } from "../errors.ts";
import { emit, paint, parseFormat, progress } from "../output.ts";
import { openSession, type GlobalOptions, type Session } from "../session.ts";
import { enumValue } from "../shapes.ts";
import { loadSpec, type LoadedSpec } from "../spec/load.ts";
import {
  conditionFromSpec,
  flagToSpec,
  ruleFromSpec,
  segmentToSpec,
  type EnvironmentSpec,
  type FlagSpec,
  type ProjectSpec,
  type SegmentSpec,
} from "../spec/model.ts";
import { plan, type Change } from "../spec/plan.ts";
import { describe, renderChanges } from "../spec/render.ts";
import { readState, type ServerState } from "../spec/state.ts";

type Options = GlobalOptions & { file: string; prune?: boolean; dryRun?: boolean; confirm?: boolean; reason: string };

/** `--confirm`: the plan is shown; anything but y/yes on stdin stops before the first write. */
async function confirmed(count: number): Promise<boolean> {
  process.stderr.write(`Apply ${count} change${count === 1 ? "" : "s"}? [y/N] `);
  const { createInterface } = await import("node:readline");
  const rl = createInterface({ input: process.stdin, terminal: false });
  for await (const line of rl) {
    rl.close();
    return /^y(es)?$/i.test(line.trim());
  }
  return false;
}

/** Loads the files, opens the session on their project, reads the server and plans. */
async function prepare(cmd: Command) {
  const opts = cmd.optsWithGlobals<Options>();
  const format = parseFormat(opts.output);
  const first = await loadSpec(opts.file);
  if (first.project && opts.project && first.project !== opts.project)
    throw new UsageError(`--project ${opts.project} but the files say project: ${first.project}`);
  const session = await openSession({ ...opts, project: first.project ?? opts.project });
  const state = await readState(session);
  // Again, now that references can be checked against the server's environments and segments.
  const loaded = await loadSpec(opts.file, { environments: state.environments.map((e) => e.key), serverSegments: [...state.segments.keys()] });
  return { opts, format, session, state, loaded, changes: plan(loaded, state, Boolean(opts.prune)) };
}

const shape = (c: Change) => ({ action: c.action, kind: c.kind, key: c.key, environment: c.environment ?? null, before: c.before, after: c.after });

export async function diff(cmd: Command): Promise<number> {
  const { format, changes } = await prepare(cmd);
  await emit(format, { changes: changes.map(shape) }, () => {
    if (changes.length === 0) process.stdout.write("No changes: the project matches the files.\n");
    else process.stdout.write(`${renderChanges(changes)}\n${changes.length} change${changes.length === 1 ? "" : "s"} pending.\n`);
  });
  return changes.length ? EXIT_DIFF : 0;
}

export async function apply(cmd: Command): Promise<void> {
  const { opts, format, session, state, loaded, changes } = await prepare(cmd);
  if (opts.dryRun || changes.length === 0) {
    await emit(format, { applied: [], pending: changes.map(shape), dryRun: Boolean(opts.dryRun) }, () => {
      if (changes.length === 0) process.stdout.write("No changes: the project matches the files.\n");
      else process.stdout.write(`${renderChanges(changes)}\n${changes.length} change${changes.length === 1 ? "" : "s"} would be applied (dry run).\n`);
    });
    return;
  }
  if (opts.confirm) {
    process.stdout.write(renderChanges(changes));
    if (!(await confirmed(changes.length))) throw new UserError("not applied: not confirmed");
  }
  const writer = new Writer(session, state, loaded, opts.reason);
  const applied: Change[] = [];
  for (const [i, change] of changes.entries()) {
    progress(`[${i + 1}/${changes.length}] ${describe(change)}`);
    try {
      await writer.write(change);
    } catch (err) {
      throw failed(err, loaded, change, applied, changes.length);
    }
    applied.push(change);
    if (format === "table") process.stdout.write(`${paint("green", "✓")} ${describe(change)}\n`);
  }
  await emit(format, { applied: applied.map(shape), pending: [], dryRun: false }, () => {
    process.stdout.write(`Applied ${applied.length} change${applied.length === 1 ? "" : "s"}.\n`);
  });
}

/** Where a change comes from in the files, for messages: `flags.yaml:12: `. */
function origin(loaded: LoadedSpec, c: Change): string {
  if (c.action === "archive" || c.action === "delete") return "";
  const path = c.kind === "targeting" ? [c.key, "environments", c.environment!] : [c.key];
  return `${loaded.where(path, c.kind === "segment" ? "segments" : "flags")}: `;
}

/** A write that failed: says which, why, where in the files, and exactly what was applied before it. */
function failed(err: unknown, loaded: LoadedSpec, change: Change, applied: Change[], total: number): Error {
  if (!(err instanceof ConnectError)) return err as Error;
  const done = applied.length
    ? `${applied.length} of ${total} changes were applied before it (${applied.map(describe).join("; ")}), the rest were not`
    : "nothing was applied";
  const why = err.code === Code.Aborted ? `changed on the server since vane read it (${err.rawMessage})` : `${codeName(err)}: ${err.rawMessage}`;
  const next = err.code === Code.Aborted ? "; run vane diff to see the current state and apply again" : "";
  return new UserError(`${origin(loaded, change)}could not ${describe(change)}: ${why}; ${done}${next}`);
}

/** Makes one change, each write carrying the version it read (threaded through a flag's writes). */
class Writer {
  private readonly flags;
  private readonly segments;
  private readonly versions = new Map<string, bigint>();

  constructor(
    private readonly session: Session,
    private readonly state: ServerState,
    private readonly loaded: LoadedSpec,
    private readonly reason: string,
  ) {
    this.flags = session.client(FlagService);
    this.segments = session.client(SegmentService);
    for (const [key, f] of state.flags) this.versions.set(key, f.flag.version);
  }

  async write(c: Change): Promise<void> {
    const projectId = this.state.project.id;
    const reason = this.reason;
    if (c.kind === "segment") {
      const seg = this.loaded.spec.segments[c.key] as SegmentSpec | undefined;
      const have = this.state.segments.get(c.key);
      const fields = () => ({
        name: seg!.name ?? c.key,
        description: seg!.description ?? "",
        conditions: (seg!.when ?? []).map(conditionFromSpec),
        includedKeys: seg!.include ?? [],
        excludedKeys: seg!.exclude ?? [],
      });
      if (c.action === "create") await this.segments.createSegment({ projectId, key: c.key, reason, ...fields() });
      else if (c.action === "update") await this.segments.updateSegment({ projectId, key: c.key, expectedVersion: have!.version, reason, ...fields() });
      else await this.segments.deleteSegment({ projectId, key: c.key, expectedVersion: have!.version, reason });
      return;
    }
    const spec = this.loaded.spec.flags[c.key] as FlagSpec | undefined;
    if (c.kind === "targeting") return this.writeTargeting(c.key, c.environment!, spec!.environments![c.environment!]);
    const expectedVersion = this.versions.get(c.key) ?? 0n;
    let flag;
    if (c.action === "create")
      flag = (await this.flags.createFlag({ projectId, key: c.key, type: enumValue(FlagType, spec!.type), reason, ...this.definition(c.key, spec!) })).flag;
    else if (c.action === "update")
      flag = (await this.flags.updateFlag({ projectId, key: c.key, expectedVersion, reason, ...this.definition(c.key, spec!) })).flag;
    else if (c.action === "unarchive") flag = (await this.flags.unarchiveFlag({ projectId, key: c.key, expectedVersion, reason })).flag;
    else flag = (await this.flags.archiveFlag({ projectId, key: c.key, expectedVersion, reason })).flag;
    this.versions.set(c.key, flag!.version);
  }

  private definition(key: string, spec: FlagSpec) {
    // The file has no variant descriptions: keep the server's.
    const described = new Map(this.state.flags.get(key)?.flag.variants.map((v) => [v.key, v.description]) ?? []);
    return {
      name: spec.name ?? key,
      description: spec.description ?? "",
      tags: spec.tags ?? [],
      owner: spec.owner ?? "",
      clientVisible: Boolean(spec.clientVisible),
      variants: Object.entries(spec.variants).map(([k, v]) => ({ key: k, value: fromJson(ValueSchema, v), description: described.get(k) ?? "" })),
    };
  }

  private async writeTargeting(key: string, envKey: string, target: EnvironmentSpec): Promise<void> {
    const env = this.state.environments.find((e) => e.key === envKey)!;
    const have = this.state.flags.get(key)?.environments.get(envKey);
    // Rules without an id in the file keep the id of the rule they replace, so audit diffs line up.
    const rules = (target.rules ?? []).map((r, i) => ruleFromSpec(r, have?.rules[i]?.id ?? ""));
    await this.flags.updateFlagEnvironment({
      environmentId: env.id,
      flagKey: key,
      expectedVersion: have?.version ?? 0n,
      enabled: target.enabled,
      defaultVariant: target.default ?? "",
      rules,
      reason: this.reason,
    });
  }
}

export async function pull(cmd: Command): Promise<void> {
  const opts = cmd.optsWithGlobals<GlobalOptions & { file?: string }>();
  const format = parseFormat(opts.output);
  const session = await openSession(opts);
  const state = await readState(session);
  const envKeys = new Map(state.environments.map((e) => [e.id, e.key]));
  const doc: ProjectSpec = { project: state.project.key, flags: {}, segments: {} };
  for (const [key, s] of [...state.segments].sort(([a], [b]) => a.localeCompare(b))) doc.segments![key] = segmentToSpec(s);
  for (const [key, f] of [...state.flags].sort(([a], [b]) => a.localeCompare(b)))
    if (!f.flag.archived) doc.flags![key] = flagToSpec(f.flag, [...f.environments.values()], envKeys);
  const text =
    format === "json"
      ? `${JSON.stringify(doc, null, 2)}\n`
      : `# Vane flags as code (project ${state.project.key}); schema: cli/schema/vane-flags.schema.json\n# Check with vane diff -f FILE, change with vane apply -f FILE.\n${stringify(doc)}`;
  if (opts.file) {
    await writeFile(opts.file, text);
    process.stderr.write(`Wrote ${Object.keys(doc.flags!).length} flags and ${Object.keys(doc.segments!).length} segments to ${opts.file}\n`);
  } else process.stdout.write(text);
}
