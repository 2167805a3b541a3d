/**
 * The regular expressions of `regex_match` (and the flags service's MATCHES): RE2 syntax and
 * semantics through re2js, a pure-JavaScript port of RE2. Matching takes time linear in the input
 * whatever the pattern, so no pattern can stall the event loop; the price is RE2's syntax (no
 * backreferences, no lookaround). See docs/engine.md for how it differs from JavaScript's RegExp.
 */
import { RE2JS, RE2JSSyntaxException } from "re2js";

/** Largest pattern, in characters. */
export const MAX_REGEX_LENGTH = 256;

/** A compiled pattern: `test` searches the whole string (unanchored), as RegExp's does. */
export interface CompiledRegex {
  test(input: string): boolean;
}

const FLAG_BITS: Readonly<Record<string, number>> = { i: RE2JS.CASE_INSENSITIVE, m: RE2JS.MULTILINE, s: RE2JS.DOTALL };

/** True for the flags a pattern may have: distinct letters of `i`, `m`, `s` (or none). */
export function validRegexFlags(flags: string): boolean {
  return /^[ims]*$/.test(flags) && new Set(flags).size === flags.length;
}

/** Raised by {@link compileRegex}; the message says why, for a person to act on. */
export class RegexError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "RegexError";
  }
}

/**
 * Compiles `pattern` with RE2 semantics and `flags` (validated by {@link validRegexFlags} first).
 * Compile once, match many times: the compiled object keeps its own DFA cache (bounded by re2js
 * at 8 MB per pattern; beyond it, it falls back to its NFA, still linear).
 */
export function compileRegex(pattern: string, flags = ""): CompiledRegex {
  let bits = 0;
  for (const f of flags) bits |= FLAG_BITS[f] ?? 0;
  try {
    return RE2JS.compile(pattern, bits);
  } catch (err) {
    throw new RegexError(explain(err));
  }
}

/** Why `pattern` cannot be compiled, or undefined. */
export function regexProblem(pattern: string, flags = ""): string | undefined {
  try {
    compileRegex(pattern, flags);
    return undefined;
  } catch (err) {
    if (err instanceof RegexError) return err.message;
    throw err;
  }
}

const RE2 = "(RE2 syntax, matched in linear time)";

/** Turns re2js's parser errors into what the writer of a JavaScript-style pattern needs to hear. */
function explain(err: unknown): string {
  if (!(err instanceof RE2JSSyntaxException)) return `not a valid regular expression ${RE2}: ${(err as Error).message}`;
  const what = err.getDescription();
  const at = err.getPattern() ?? "";
  if (/^\\[1-9]/.test(at)) return `backreferences (${at.slice(0, 2)}) are not supported ${RE2}`;
  if (at.startsWith("\\k")) return `named backreferences (\\k<…>) are not supported ${RE2}`;
  if (at.startsWith("(?=") || at.startsWith("(?!")) return `lookahead (${at.slice(0, 3)}…) is not supported ${RE2}`;
  if (at.startsWith("(?<=") || at.startsWith("(?<!")) return `lookbehind (${at.slice(0, 4)}…) is not supported ${RE2}`;
  if (at.startsWith("\\u")) return `\\u escapes are not supported ${RE2}: write \\x{00E9} for a code point`;
  if (/^\\[pP]/.test(at)) return `not a valid regular expression ${RE2}: unknown Unicode class \`${at}\` (write \\p{Greek}, \\p{L}, \\p{Lu}…)`;
  if (what === "invalid repeat count") return `not a valid regular expression ${RE2}: invalid repeat count \`${at}\` (at most 1000, nested repeats multiplied)`;
  return `not a valid regular expression ${RE2}: ${what}: \`${at}\``;
}
