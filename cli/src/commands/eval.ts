/** eval: one flag for one context, explained (the Evaluate RPC's explain option; no exposure). */
import { readFile } from "node:fs/promises";
import type { Command } from "commander";
import { toJson, type JsonObject, type JsonValue } from "@bufbuild/protobuf";
import { ValueSchema } from "@bufbuild/protobuf/wkt";
import { ErrorCode, EvaluationService, Reason } from "#gen/vane/evaluation/v1/evaluation_service_pb.js";
import { UsageError, UserError } from "../errors.ts";
import { emit, paint, parseFormat, printFields } from "../output.ts";
import { openSession, type GlobalOptions } from "../session.ts";
import { enumName } from "../shapes.ts";
import { conditionToSpec } from "../spec/model.ts";

/** `k=v` pairs; a value that parses as JSON (42, true, "x", [1]) is that, else the plain string. */
function parseContext(pairs: string[]): JsonObject {
  const out: JsonObject = {};
  for (const pair of pairs) {
    const eq = pair.indexOf("=");
    if (eq <= 0) throw new UsageError(`--context must be KEY=VALUE, got "${pair}"`);
    const raw = pair.slice(eq + 1);
    let value: JsonValue;
    try {
      value = JSON.parse(raw) as JsonValue;
    } catch {
      value = raw;
    }
    out[pair.slice(0, eq)] = value;
  }
  return out;
}

async function readContextFile(path: string): Promise<JsonObject> {
  let text;
  try {
    text = await readFile(path, "utf8");
  } catch {
    throw new UserError(`${path}: cannot read the context file`);
  }
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch (err) {
    throw new UserError(`${path}: not JSON (${(err as Error).message})`);
  }
  if (typeof parsed !== "object" || parsed === null || Array.isArray(parsed)) throw new UserError(`${path}: the context must be a JSON object`);
  return parsed as JsonObject;
}

export async function evaluate(cmd: Command): Promise<number> {
  const opts = cmd.optsWithGlobals<GlobalOptions & { env?: string; context?: string[]; contextFile?: string }>();
  const format = parseFormat(opts.output);
  const context = { ...(opts.contextFile ? await readContextFile(opts.contextFile) : {}), ...parseContext(opts.context ?? []) };
  const session = await openSession(opts);
  const env = await session.environment(opts.env);
  const res = await session.client(EvaluationService).evaluate({ flagKey: cmd.args[0], context, environmentId: env.id, explain: true });
  const e = res.evaluation!;
  const x = e.explanation;
  const matched = x && x.matchedRuleIndex >= 0 ? x.rules.find((r) => r.index === x.matchedRuleIndex) : undefined;
  const data = {
    flag: e.flagKey,
    environment: env.key,
    value: e.value ? toJson(ValueSchema, e.value) : null,
    variant: e.variant,
    reason: enumName(Reason, e.reason),
    errorCode: e.errorCode ? enumName(ErrorCode, e.errorCode) : null,
    errorMessage: e.errorMessage || null,
    matchedRule: matched
      ? {
          index: matched.index,
          id: matched.id,
          description: matched.description,
          conditions: matched.conditions.map((c) => (c.condition ? conditionToSpec(c.condition) : null)),
        }
      : null,
    summary: x?.summary ?? null,
    version: Number(res.version),
  };
  await emit(format, data, () => {
    printFields([
      ["value", JSON.stringify(data.value)],
      ["variant", data.variant],
      ["reason", data.reason],
      ["rule", matched ? `#${matched.index}${matched.description ? ` ${matched.description}` : ""}` : undefined],
      ["why", data.summary ?? undefined],
    ]);
    if (data.errorCode) process.stdout.write(`${paint("red", `error: ${data.errorCode}: ${data.errorMessage ?? ""}`)}\n`);
  });
  return data.errorCode ? 1 : 0;
}
