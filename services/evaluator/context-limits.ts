/**
 * Bounds on an evaluation context, on every protocol (Vane's API declares the first two in its
 * contract too): a context is a unit's attributes, not a payload. Without them one request could
 * carry a megabyte unit key into an exposure no NATS message can hold, or make every evaluation
 * walk megabytes of attributes.
 */
import type { JsonObject, JsonValue } from "@bufbuild/protobuf";
import { invalidArgument } from "#lib/process/errors.ts";

export const CONTEXT_LIMITS = {
  /** Top-level attributes. */
  attributes: 200,
  /** Characters of a string `targetingKey` (the unit key of experiments; Track's unit_key has the same bound). */
  targetingKeyChars: 256,
  /** Characters of an attribute name, at any level. */
  nameChars: 256,
  /** Characters of a string value. */
  stringChars: 16_384,
  /** Levels of objects and lists below the context itself. */
  depth: 8,
  /** Values in the whole context, at every level. */
  values: 2_000,
  /** Characters of names and strings in the whole context. */
  totalChars: 65_536,
} as const;

/** Throws INVALID_ARGUMENT naming the first limit the context exceeds. */
export function checkContext(context: JsonObject): void {
  const L = CONTEXT_LIMITS;
  const names = Object.keys(context);
  if (names.length > L.attributes) throw invalidArgument(`context has ${names.length} attributes; the limit is ${L.attributes}`);
  const key = context.targetingKey;
  if (typeof key === "string" && key.length > L.targetingKeyChars) {
    throw invalidArgument(`context.targetingKey is ${key.length} characters; the limit is ${L.targetingKeyChars}`);
  }
  let values = 0;
  let chars = 0;
  // An explicit stack: the walk itself never recurses, whatever the input.
  const stack: { value: JsonValue; path: string; depth: number }[] = [{ value: context, path: "context", depth: 0 }];
  while (stack.length > 0) {
    const { value, path, depth } = stack.pop()!;
    if (typeof value === "string") {
      if (value.length > L.stringChars) throw invalidArgument(`${path} is ${value.length} characters; the limit for a string in a context is ${L.stringChars}`);
      chars += value.length;
    } else if (value !== null && typeof value === "object") {
      if (depth > L.depth) throw invalidArgument(`${path} nests more than ${L.depth} levels of objects and lists (the limit in a context)`);
      if (Array.isArray(value)) {
        for (let i = 0; i < value.length; i++) stack.push({ value: value[i], path: `${path}[${i}]`, depth: depth + 1 });
        values += value.length;
      } else {
        for (const [name, v] of Object.entries(value)) {
          if (name.length > L.nameChars) throw invalidArgument(`${path} has an attribute name of ${name.length} characters; the limit is ${L.nameChars}`);
          chars += name.length;
          stack.push({ value: v, path: `${path}.${name}`, depth: depth + 1 });
        }
        values += Object.keys(value).length;
      }
    }
    if (values > L.values) throw invalidArgument(`context holds more than ${L.values} values (the limit)`);
    if (chars > L.totalChars) throw invalidArgument(`context holds more than ${L.totalChars} characters of names and strings (the limit)`);
  }
}
