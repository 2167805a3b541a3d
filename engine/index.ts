/**
 * Vane's evaluation engine: flagd flag sets compiled once per version into plain functions.
 * See docs/engine.md.
 */
export * from "./types.ts";
export { compileFlagSet, type CompiledFlagSet, type CompileFlagSetOptions, type FlagInfo } from "./flag-set.ts";
export { parseFlagdJson, validateFlagSet, toFlagdJson, variantKind, FLAGD_SCHEMA_URL } from "./flagd-format.ts";
export { compileJsonLogic } from "./logic/compile.ts";
export { truthy } from "./logic/values.ts";
export { LogicError, type CompiledLogic, type CompileLogicOptions } from "./logic/types.ts";
export { OPERATORS, EXTENSION_OPERATORS } from "./logic/operators.ts";
export { compileRegex, regexProblem, validRegexFlags, RegexError, MAX_REGEX_LENGTH, type CompiledRegex } from "./regex.ts";
export { murmur3Utf8 } from "./murmur3.ts";
export { parseSemVer, compareSemVer, type SemVer } from "./logic/operators/semver.ts";
export { bucketOf, MAX_TOTAL_WEIGHT } from "./logic/operators/fractional.ts";
export { explainFlag, type ExplainOptions, type FlagExplanation, type TraceNode, type BucketTrace } from "./explain.ts";
