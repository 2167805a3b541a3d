/**
 * Vane's evaluation engine: flagd flag sets compiled once per version into plain functions.
 * See docs/engine.md.
 */
export * from "./types.ts";
export { compileFlagSet, type CompiledFlagSet, type CompileFlagSetOptions, type FlagInfo } from "./flag-set.ts";
export { parseFlagdJson, validateFlagSet, toFlagdJson, variantKind, FLAGD_SCHEMA_URL } from "./flagd-format.ts";
export { compileJsonLogic, truthy, LogicError, OPERATORS, EXTENSION_OPERATORS, type CompiledLogic, type CompileLogicOptions } from "./json-logic-compile.ts";
export { compileRegex, regexProblem, validRegexFlags, RegexError, MAX_REGEX_LENGTH, type CompiledRegex } from "./regex.ts";
export { murmur3Utf8 } from "./murmur3.ts";
export { parseSemVer, compareSemVer, type SemVer } from "./semver.ts";
export { bucketOf, MAX_TOTAL_WEIGHT } from "./fractional.ts";
export { explainFlag, type ExplainOptions, type FlagExplanation, type TraceNode, type BucketTrace } from "./explain.ts";
