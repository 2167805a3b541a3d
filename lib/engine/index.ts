/**
 * Vane's evaluation engine: flagd flag sets compiled once per version into plain functions.
 * See docs/engine.md.
 */
export * from "#lib/engine/types.ts";
export { compileFlagSet, type CompiledFlagSet, type CompileFlagSetOptions, type FlagInfo } from "#lib/engine/flag-set.ts";
export { parseFlagdJson, validateFlagSet, toFlagdJson, FLAGD_SCHEMA_URL } from "#lib/engine/flagd-format.ts";
export { compileJsonLogic, truthy, LogicError, OPERATORS, EXTENSION_OPERATORS, type CompiledLogic, type CompileLogicOptions } from "#lib/engine/json-logic-compile.ts";
export { compileRegex, regexProblem, validRegexFlags, RegexError, MAX_REGEX_LENGTH, type CompiledRegex } from "#lib/engine/regex.ts";
export { murmur3Utf8 } from "#lib/engine/murmur3.ts";
export { parseSemVer, compareSemVer, type SemVer } from "#lib/engine/semver.ts";
export { bucketOf, MAX_TOTAL_WEIGHT } from "#lib/engine/fractional.ts";
export { explainFlag, type ExplainOptions, type FlagExplanation, type TraceNode, type BucketTrace } from "#lib/engine/explain.ts";
