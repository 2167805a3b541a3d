/**
 * Every operator the engine knows, in one table: its compiler (one file per family under
 * `operators/`) and the few traits the core needs to know about it. flagd's evaluator registers its
 * custom operators (`fractional`, `sem_ver`, `starts_with`/`ends_with`) the same way.
 */
import type { OperatorSpec } from "./types.ts";
import { compileArithmetic, compileMaxMin } from "./operators/arithmetic.ts";
import { compileIn, compileIterator, compileMerge } from "./operators/arrays.ts";
import { compileComparison } from "./operators/comparison.ts";
import { compileMissing, compileMissingSome, compileVar } from "./operators/data.ts";
import { compileExperiment } from "./operators/experiment.ts";
import { compileFractional } from "./operators/fractional.ts";
import { compileAndOr, compileIf, compileNot } from "./operators/logic.ts";
import { compileSemVer } from "./operators/semver.ts";
import { compileCat, compileRegexMatch, compileStringComparison, compileSubstr } from "./operators/strings.ts";

const comparison: OperatorSpec = { compile: compileComparison, lazy: true };
const arithmetic: OperatorSpec = { compile: compileArithmetic };
const maxMin: OperatorSpec = { compile: compileMaxMin, nullOnBadArgs: true };
const iterator: OperatorSpec = { compile: compileIterator, lazy: true, iterator: true };
const flagdCustom = (compile: OperatorSpec["compile"]): OperatorSpec => ({ compile, custom: true, nullOnBadArgs: true });

const TABLE: Readonly<Record<string, OperatorSpec>> = {
  var: { compile: compileVar },
  missing: { compile: compileMissing },
  missing_some: { compile: compileMissingSome },
  if: { compile: compileIf, lazy: true },
  "?:": { compile: compileIf, lazy: true },
  "==": comparison,
  "===": comparison,
  "!=": comparison,
  "!==": comparison,
  "!": { compile: compileNot },
  "!!": { compile: compileNot },
  or: { compile: compileAndOr, lazy: true },
  and: { compile: compileAndOr, lazy: true },
  ">": comparison,
  ">=": comparison,
  "<": comparison,
  "<=": comparison,
  max: maxMin,
  min: maxMin,
  "+": arithmetic,
  "-": arithmetic,
  "*": arithmetic,
  "/": arithmetic,
  "%": arithmetic,
  map: iterator,
  filter: iterator,
  reduce: iterator,
  all: iterator,
  none: iterator,
  some: iterator,
  merge: { compile: compileMerge },
  in: { compile: compileIn },
  cat: { compile: compileCat },
  substr: { compile: compileSubstr },
  fractional: flagdCustom(compileFractional),
  sem_ver: flagdCustom(compileSemVer),
  starts_with: flagdCustom(compileStringComparison),
  ends_with: flagdCustom(compileStringComparison),
  regex_match: { compile: compileRegexMatch, extension: true },
  experiment: { compile: compileExperiment, extension: true },
};

const byName = new Map(Object.entries(TABLE));

/** The operator named `op`, if the engine knows it (own names only: never `toString` & co). */
export const operatorSpec = (op: string): OperatorSpec | undefined => byName.get(op);

/** flagd's dialect: every operator a flagd flag file may use. */
export const OPERATORS: ReadonlySet<string> = new Set([...byName].filter(([, s]) => !s.extension).map(([name]) => name));

/**
 * Vane's operators beyond flagd's dialect, for Vane's own snapshots only:
 * - `{"regex_match": [value, "pattern", "flags"?]}`: true when the string value matches the
 *   (literal) pattern, compiled once with RE2 semantics (`regex.ts`) and the given flags (`i`,
 *   `m`, `s`); null when the value is not a string, like flagd's custom operators on bad input.
 * - `{"experiment": ["experimentId", expr]}`: evaluates `expr`; when it names a variant, the
 *   resolution records that the experiment assigned it (`Resolution.experimentId`), which is what
 *   makes an evaluation an exposure.
 */
export const EXTENSION_OPERATORS: ReadonlySet<string> = new Set([...byName].filter(([, s]) => s.extension).map(([name]) => name));
