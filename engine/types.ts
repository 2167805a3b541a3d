/** Types shared by the evaluation engine: flagd's flag-definition format and resolutions. */

/** Any JSON value. */
export type JsonValue = null | boolean | number | string | JsonValue[] | { [key: string]: JsonValue };

/** Metadata values flagd allows on flag sets and flags. */
export type MetadataValue = string | number | boolean;

/** One flag in flagd's flag-definition format. */
export interface FlagDefinition {
  /** Only in the array form of `flags`. */
  key?: string;
  state: "ENABLED" | "DISABLED";
  variants: Record<string, JsonValue>;
  /** null or absent: the caller's code default is used (flagd's "code default"). */
  defaultVariant?: string | null;
  /** JSON Logic; absent, null or `{}` means no targeting (reason STATIC). */
  targeting?: JsonValue;
  metadata?: Record<string, MetadataValue>;
}

/** A flag set in flagd's flag-definition format, as parsed JSON. */
export interface FlagSetDefinition {
  $schema?: string;
  /** A map by key, or an array of flags carrying `key`. */
  flags: Record<string, FlagDefinition> | FlagDefinition[];
  /** Shared rules, referenced from targeting as `{"$ref": "name"}`. */
  $evaluators?: Record<string, JsonValue>;
  metadata?: Record<string, MetadataValue>;
}

/** The evaluation context: attributes of the subject, `targetingKey` among them. */
export type EvaluationContext = Readonly<Record<string, unknown>>;

/** OpenFeature resolution reasons the engine produces. */
export type ResolutionReason = "STATIC" | "TARGETING_MATCH" | "DEFAULT" | "DISABLED" | "ERROR";

/** OpenFeature error codes the engine produces. */
export type ResolutionErrorCode = "FLAG_NOT_FOUND" | "TYPE_MISMATCH" | "PARSE_ERROR" | "GENERAL";

/** The type a caller asks for; `integer` evaluates as a float64 and truncates, like flagd. */
export type FlagValueType = "boolean" | "string" | "number" | "integer" | "object";

/**
 * The outcome of evaluating one flag. Frozen and often shared between calls: never mutate.
 * No `value` (and no `variant`) means "use your code default" — for reason DEFAULT (no default
 * variant), DISABLED, and every ERROR.
 */
export interface Resolution {
  readonly value?: unknown;
  readonly variant?: string;
  readonly reason: ResolutionReason;
  readonly errorCode?: ResolutionErrorCode;
  readonly errorMessage?: string;
  /** The flag set's metadata overlaid with the flag's. */
  readonly metadata: Readonly<Record<string, MetadataValue>>;
  /** Set when an experiment's assignment chose the variant (Vane's `experiment` operator). */
  readonly experimentId?: string;
}

/** A problem found in a flag set, at a dotted path such as `flags.my-flag.targeting.if[0].fractional[1]`. */
export interface FlagSetIssue {
  readonly path: string;
  readonly message: string;
  /**
   * flagd loads a flag set with this problem and it affects only the flag's evaluations, as flagd
   * has them: PARSE_ERROR for JSON Logic it cannot apply (an unknown operator or `$ref`), GENERAL
   * when targeting names a variant that does not exist, null (so DEFAULT) from flagd's own
   * operators given bad arguments, TYPE_MISMATCH for a variant of another type, metadata that is
   * not a primitive left out. The engine does the same; writers that validate before storing (the
   * flags service) still refuse it.
   */
  readonly atEvaluation?: boolean;
}

/** Thrown when a flag set cannot be parsed or compiled; carries every issue found. */
export class FlagSetError extends Error {
  readonly issues: readonly FlagSetIssue[];

  constructor(issues: readonly FlagSetIssue[]) {
    const first = issues[0];
    const more = issues.length > 1 ? ` (and ${issues.length - 1} more)` : "";
    super(first ? `invalid flag set: ${first.path || "(root)"}: ${first.message}${more}` : "invalid flag set");
    this.name = "FlagSetError";
    this.issues = issues;
  }
}
