/**
 * Limits that keep everything the flags API accepts publishable and evaluable: a snapshot must
 * stay within the configured ceiling (what an evaluator is expected to hold; it is published in
 * chunks, so NATS's max_payload does not bound it) and decode under protobuf's nesting limit
 * (100 messages deep), and the evaluator must compile it. Values are checked at the edge with the path of the offending value;
 * the encoded snapshot is checked once more at commit, as the last guard before the outbox.
 */
import { fromBinary } from "@bufbuild/protobuf";
import { EnvironmentSnapshotSchema } from "#gen/vane/flags/v1/snapshot_pb.js";
import type { JsonValue } from "#engine";
import { invalidArgument } from "#lib/process/errors.ts";

/**
 * Deepest nesting of JSON (objects and arrays) in a variant value, a condition value, JSON Logic
 * or metadata. A snapshot decodes up to 48 levels inside a flag's targeting; 32 leaves room for
 * the messages around it and is far beyond any hand-written rule.
 */
export const MAX_JSON_DEPTH = 32;

/** The nesting depth of a JSON value (a scalar is 0), counting no further than `stop`. */
export function jsonDepth(v: JsonValue | undefined, stop = MAX_JSON_DEPTH + 1): number {
  if (v === null || typeof v !== "object") return 0;
  if (stop <= 1) return 1;
  let deepest = 0;
  for (const child of Array.isArray(v) ? v : Object.values(v)) {
    deepest = Math.max(deepest, jsonDepth(child, stop - 1));
    if (deepest >= stop - 1) break;
  }
  return 1 + deepest;
}

/** An issue for a value nested deeper than {@link MAX_JSON_DEPTH}, or undefined. */
export function depthIssue(v: JsonValue | undefined, path: string): { path: string; message: string } | undefined {
  if (jsonDepth(v) <= MAX_JSON_DEPTH) return undefined;
  return { path, message: `nests more than ${MAX_JSON_DEPTH} levels of objects and lists (the limit)` };
}

/** Refuses (INVALID_ARGUMENT) an encoded snapshot over the ceiling or that could not be decoded. */
export function assertPublishable(snapshot: Uint8Array, environmentId: string, maxBytes: number): void {
  if (snapshot.length > maxBytes) {
    throw invalidArgument(
      `this change would make environment ${environmentId}'s configuration ${snapshot.length} bytes, over the limit of ${maxBytes} bytes ` +
        "(VANE_SNAPSHOT_MAX_BYTES, the most one evaluator is expected to hold for one environment): remove or archive flags, or shorten rules and values",
    );
  }
  try {
    fromBinary(EnvironmentSnapshotSchema, snapshot);
  } catch (err) {
    throw invalidArgument(
      `this change would make environment ${environmentId}'s configuration undecodable (${(err as Error).message}): values nest too deeply`,
    );
  }
}

/**
 * The nesting depth of JSON text, scanned without parsing (no recursion, whatever the input): a
 * document deeper than anything acceptable is refused before a parser or validator walks it.
 */
export function textJsonDepth(text: string): number {
  let depth = 0;
  let deepest = 0;
  let inString = false;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (inString) {
      if (c === 0x5c)
        i++; // backslash: skip the escaped character
      else if (c === 0x22) inString = false;
    } else if (c === 0x22) inString = true;
    else if (c === 0x7b || c === 0x5b) deepest = Math.max(deepest, ++depth);
    else if (c === 0x7d || c === 0x5d) depth--;
  }
  return deepest;
}

/** Issues for values of a flagd document nested deeper than {@link MAX_JSON_DEPTH}, with their paths. */
export function flagdDepthIssues(def: {
  flags:
    | Record<string, { variants?: Record<string, unknown>; targeting?: unknown; metadata?: unknown }>
    | { key?: string; variants?: Record<string, unknown>; targeting?: unknown; metadata?: unknown }[];
  $evaluators?: Record<string, unknown>;
  metadata?: unknown;
}): { path: string; message: string }[] {
  const issues: { path: string; message: string }[] = [];
  const check = (v: unknown, path: string) => {
    const issue = depthIssue(v as JsonValue, path);
    if (issue) issues.push(issue);
  };
  const flags = Array.isArray(def.flags)
    ? def.flags.map((f, i) => [`flags[${i}]`, f] as const)
    : Object.entries(def.flags).map(([k, f]) => [`flags.${k}`, f] as const);
  for (const [path, f] of flags) {
    check(f.targeting, `${path}.targeting`);
    check(f.metadata, `${path}.metadata`);
    for (const [name, value] of Object.entries(f.variants ?? {})) check(value, `${path}.variants.${name}`);
  }
  for (const [name, logic] of Object.entries(def.$evaluators ?? {})) check(logic, `$evaluators.${name}`);
  check(def.metadata, "metadata");
  return issues;
}
