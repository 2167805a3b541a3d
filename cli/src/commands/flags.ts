/** flags list/get/create/archive/set, segments list/get. */
import type { Command } from "commander";
import { create as createMessage, fromJson, type JsonValue } from "@bufbuild/protobuf";
import { ValueSchema } from "@bufbuild/protobuf/wkt";
import { stringify } from "yaml";
import { FlagService, type FlagEnvironmentSummary } from "#gen/vane/flags/v1/flag_service_pb.js";
import { SegmentService } from "#gen/vane/flags/v1/segment_service_pb.js";
import { FlagType, RuleSchema, type Flag } from "#gen/vane/flags/v1/flags_pb.js";
import { UsageError, UserError } from "../errors.ts";
import { emit, paint, parseFormat, printTable } from "../output.ts";
import { openSession, type GlobalOptions } from "../session.ts";
import { enumName, enumValue, iso } from "../shapes.ts";
import { flagToSpec, segmentToSpec } from "../spec/model.ts";

type Options = GlobalOptions & Record<string, string | string[] | boolean | undefined>;

async function setup(cmd: Command) {
  const opts = cmd.optsWithGlobals<Options>();
  const session = await openSession(opts);
  return { opts, format: parseFormat(opts.output as string), session, flags: session.client(FlagService), project: await session.project() };
}

export async function list(cmd: Command): Promise<void> {
  const { opts, format, session, flags, project } = await setup(cmd);
  // Every page: a table that silently stops at 200 flags would mislead.
  const listAll = async () => {
    const all: Flag[] = [];
    const summaries: Record<string, FlagEnvironmentSummary[]> = {};
    let pageToken = "";
    do {
      const page = await flags.listFlags({
        projectId: project.id,
        query: (opts.query as string) ?? "",
        onlyArchived: Boolean(opts.archived),
        includeArchived: Boolean(opts.archived),
        pageSize: 200,
        pageToken,
      });
      all.push(...page.flags);
      for (const [key, s] of Object.entries(page.environmentSummaries)) summaries[key] = s.environments;
      pageToken = page.nextPageToken;
    } while (pageToken);
    return { flags: all, summaries };
  };
  const [envs, res] = await Promise.all([session.environments(), listAll()]);
  const data = res.flags.map((f) => {
    const summaries = res.summaries[f.key] ?? [];
    return {
      key: f.key,
      name: f.name,
      type: enumName(FlagType, f.type),
      archived: f.archived,
      version: Number(f.version),
      environments: Object.fromEntries(
        envs.map((e) => {
          const s = summaries.find((x) => x.environmentId === e.id);
          return [e.key, { enabled: s?.enabled ?? false, default: s?.defaultVariant ?? "", rules: s?.ruleCount ?? 0 }];
        }),
      ),
    };
  });
  await emit(format, data, () =>
    printTable(
      ["key", "type", ...envs.map((e) => e.key)],
      data.map((f) => [
        f.archived ? paint("dim", f.key) : f.key,
        f.type,
        ...envs.map((e) => {
          const s = f.environments[e.key];
          const state = s.enabled ? paint("green", "on") : paint("dim", "off");
          return `${state}${s.rules ? ` +${s.rules}` : ""}`;
        }),
      ]),
    ),
  );
}

export async function get(cmd: Command): Promise<void> {
  const { format, session, flags, project } = await setup(cmd);
  const res = await flags.getFlag({ projectId: project.id, key: cmd.args[0] });
  const envs = await session.environments();
  const spec = flagToSpec(res.flag!, res.environments, new Map(envs.map((e) => [e.id, e.key])));
  const data = { key: res.flag!.key, archived: res.flag!.archived, version: Number(res.flag!.version), updateTime: iso(res.flag!.updateTime), ...spec };
  // People get the flags-as-code shape too: what they would write in a file.
  await emit(format, data, () => void process.stdout.write(stringify(data)));
}

function parseVariant(text: string): { key: string; value: JsonValue } {
  const eq = text.indexOf("=");
  if (eq <= 0) throw new UsageError(`--variant must be KEY=JSON, got "${text}"`);
  try {
    return { key: text.slice(0, eq), value: JSON.parse(text.slice(eq + 1)) as JsonValue };
  } catch {
    throw new UsageError(`--variant ${text}: the value is not JSON (strings need quotes: ${text.slice(0, eq)}='"${text.slice(eq + 1)}"')`);
  }
}

export async function create(cmd: Command): Promise<void> {
  const { opts, format, flags, project } = await setup(cmd);
  const type = opts.type as string;
  const variants = ((opts.variant as string[] | undefined) ?? []).map(parseVariant);
  if (!variants.length) {
    if (type !== "boolean") throw new UsageError(`a ${type} flag needs its variants: --variant KEY=JSON (repeatable)`);
    variants.push({ key: "on", value: true }, { key: "off", value: false });
  }
  const res = await flags.createFlag({
    projectId: project.id,
    key: cmd.args[0],
    name: (opts.name as string) ?? cmd.args[0],
    description: opts.description as string,
    tags: (opts.tag as string[]) ?? [],
    type: enumValue(FlagType, type),
    clientVisible: Boolean(opts.clientVisible),
    variants: variants.map((v) => ({ key: v.key, value: fromJson(ValueSchema, v.value) })),
  });
  const data = { key: res.flag!.key, type, variants: Object.fromEntries(variants.map((v) => [v.key, v.value])), version: Number(res.flag!.version) };
  await emit(format, data, () => void process.stdout.write(`Created flag ${data.key} (${type}: ${variants.map((v) => v.key).join(", ")})\n`));
}

export async function archive(cmd: Command): Promise<void> {
  const { opts, format, flags, project } = await setup(cmd);
  const { flag } = await flags.getFlag({ projectId: project.id, key: cmd.args[0] });
  const res = await flags.archiveFlag({ projectId: project.id, key: cmd.args[0], expectedVersion: flag!.version, reason: opts.reason as string });
  await emit(
    format,
    { key: res.flag!.key, archived: true, version: Number(res.flag!.version) },
    () => void process.stdout.write(`Archived flag ${cmd.args[0]}\n`),
  );
}

/** A rule `flags set --rollout` owns: no conditions, a two-slice rollout; replaced on the next --rollout. */
const ROLLOUT_RULE = "vane flags set --rollout";

export async function set(cmd: Command): Promise<void> {
  const { opts, format, session, flags, project } = await setup(cmd);
  if (opts.on && opts.off) throw new UsageError("--on and --off together: pick one");
  const env = await session.environment(opts.env as string | undefined);
  const got = await flags.getFlag({ projectId: project.id, key: cmd.args[0] });
  const flag = got.flag!;
  const current = got.environments.find((e) => e.environmentId === env.id);
  const variants = flag.variants.map((v) => v.key);
  const known = (v: string, what: string) => {
    if (!variants.includes(v)) throw new UserError(`${what}: flag ${flag.key} has no variant "${v}" (it has ${variants.join(", ")})`);
    return v;
  };
  const defaultVariant =
    opts.default !== undefined ? known(opts.default as string, "--default") : current?.defaultVariant || (variants.includes("off") ? "off" : variants[0]);
  let rules = current?.rules ?? [];
  if (opts.rollout !== undefined) {
    const percent = Number(opts.rollout);
    if (!Number.isInteger(percent) || percent < 0 || percent > 100)
      throw new UsageError(`--rollout must be a whole percentage from 0 to 100, got "${opts.rollout}"`);
    const served = opts.variant !== undefined ? known(opts.variant as string, "--variant") : variants.find((v) => v !== defaultVariant);
    if (!served) throw new UserError(`flag ${flag.key} has a single variant: nothing to roll out`);
    rules = rules.filter((r) => r.description !== ROLLOUT_RULE);
    rules.push(
      createMessage(RuleSchema, {
        description: ROLLOUT_RULE,
        outcome: {
          kind: {
            case: "rollout",
            value: {
              variants: [
                { variant: served, weight: percent },
                { variant: defaultVariant, weight: 100 - percent },
              ],
            },
          },
        },
      }),
    );
  }
  const enabled = opts.on ? true : opts.off ? false : (current?.enabled ?? false);
  const res = await flags.updateFlagEnvironment({
    environmentId: env.id,
    flagKey: flag.key,
    expectedVersion: current?.version ?? 0n,
    enabled,
    defaultVariant,
    rules,
    reason: opts.reason as string,
  });
  const e = res.environment!;
  const data = { key: flag.key, environment: env.key, enabled: e.enabled, default: e.defaultVariant, rules: e.rules.length, version: Number(e.version) };
  await emit(format, data, () =>
    process.stdout.write(
      `${flag.key} in ${env.key}: ${e.enabled ? paint("green", "on") : paint("dim", "off")}, default ${e.defaultVariant}, ${e.rules.length} rule(s)\n`,
    ),
  );
}

export async function segmentsList(cmd: Command): Promise<void> {
  const { format, session, project } = await setup(cmd);
  const res = await session.client(SegmentService).listSegments({ projectId: project.id });
  const data = res.segments.map((s) => ({ key: s.key, ...segmentToSpec(s), usedBy: (res.usedBy[s.key]?.references ?? []).map((r) => r.flagKey) }));
  await emit(format, data, () =>
    printTable(
      ["key", "name", "conditions", "used by"],
      data.map((s) => [s.key, s.name ?? "", s.when?.length ?? 0, s.usedBy.join(", ") || "-"]),
    ),
  );
}

export async function segmentsGet(cmd: Command): Promise<void> {
  const { format, session, project } = await setup(cmd);
  const res = await session.client(SegmentService).getSegment({ projectId: project.id, key: cmd.args[0] });
  const data = { key: res.segment!.key, version: Number(res.segment!.version), ...segmentToSpec(res.segment!), usedBy: res.usedBy.map((r) => r.flagKey) };
  await emit(format, data, () => void process.stdout.write(stringify(data)));
}
