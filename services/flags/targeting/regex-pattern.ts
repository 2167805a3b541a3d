/**
 * Write-time checks of MATCHES patterns, which evaluators run on every evaluation (the engine's
 * `regex_match`: RE2 syntax, searching, not anchored, linear time whatever the pattern).
 */
import { MAX_REGEX_LENGTH, regexProblem, validRegexFlags } from "#engine";

/**
 * Why a pattern cannot be used, or undefined: bad flags, empty, too long, or not compilable by
 * RE2 (the engine's own check, so what is accepted here always compiles in evaluators). No check
 * for "slow" patterns is needed: RE2 matches in time linear in the input.
 */
export function patternProblem(pattern: string, flags = ""): { field: "pattern" | "flags"; message: string } | undefined {
  if (!validRegexFlags(flags)) return { field: "flags", message: `flags must be distinct letters of "i", "m", "s", got "${flags}"` };
  if (pattern.length === 0) return { field: "pattern", message: "the pattern is empty" };
  if (pattern.length > MAX_REGEX_LENGTH) return { field: "pattern", message: `the pattern has ${pattern.length} characters, more than ${MAX_REGEX_LENGTH}` };
  const problem = regexProblem(pattern, flags);
  return problem === undefined ? undefined : { field: "pattern", message: problem };
}
