/**
 * Write-time checks of MATCHES patterns, which evaluators run on every evaluation (lib/engine's
 * `regex_match`: a JavaScript RegExp with the `u` flag, searching, not anchored).
 */
import safeRegex from "safe-regex2";

/** Longest pattern, in characters (lib/engine refuses longer ones too). */
export const MAX_PATTERN_LENGTH = 256;
/** Flags a pattern may add to `u`. */
const FLAGS = /^(?!.*(.).*\1)[ims]*$/;

/**
 * Why a pattern cannot be used, or undefined. Besides syntax and length, patterns prone to
 * catastrophic backtracking are refused: safe-regex2 rejects star height above 1 (a quantified
 * group containing a quantifier, such as `(a+)+`), the classic exponential shape. It is a
 * heuristic: overlapping alternatives under a star (`^(a|a)*$`) pass it.
 */
export function patternProblem(pattern: string, flags = ""): { field: "pattern" | "flags"; message: string } | undefined {
  if (!FLAGS.test(flags)) return { field: "flags", message: `flags must be distinct letters of "i", "m", "s", got "${flags}"` };
  if (pattern.length === 0) return { field: "pattern", message: "the pattern is empty" };
  if (pattern.length > MAX_PATTERN_LENGTH) return { field: "pattern", message: `the pattern has ${pattern.length} characters, more than ${MAX_PATTERN_LENGTH}` };
  try {
    new RegExp(pattern, `u${flags}`);
  } catch (err) {
    return { field: "pattern", message: `not a valid regular expression (JavaScript, u flag): ${(err as Error).message}` };
  }
  if (!safeRegex(pattern)) {
    return { field: "pattern", message: "the pattern nests quantifiers (like (a+)+) and could take exponential time; rewrite it without a repeated group that itself repeats" };
  }
  return undefined;
}
