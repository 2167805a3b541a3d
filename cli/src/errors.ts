/** Exit codes and the errors that map to them: one clear line for users, never a stack trace. */
export const EXIT_ERROR = 1;
export const EXIT_USAGE = 2;
/** `vane diff`: changes are pending. */
export const EXIT_DIFF = 3;

/** A mistake the user can fix (bad file, unknown flag, no login); printed as its message alone. */
export class UserError extends Error {
  constructor(
    message: string,
    readonly exitCode: number = EXIT_ERROR,
  ) {
    super(message);
  }
}

/** Wrong arguments: printed like commander's own usage errors, exit 2. */
export class UsageError extends UserError {
  constructor(message: string) {
    super(message, EXIT_USAGE);
  }
}
