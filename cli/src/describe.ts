/** How a failure is printed: one line for users and server errors; a stack only for our own bugs. Loaded only on failure. */
import { ConnectError } from "@connectrpc/connect";
import { EXIT_ERROR, UserError } from "./errors.ts";

/** The line printed for `err`, and the exit code. Unknown errors keep their stack (a bug of ours). */
export function describeError(err: unknown): { line: string; exitCode: number } {
  if (err instanceof UserError) return { line: err.message, exitCode: err.exitCode };
  if (err instanceof ConnectError) return { line: `server: ${codeName(err)}: ${err.rawMessage}`, exitCode: EXIT_ERROR };
  const cause = (err as { cause?: { code?: string } })?.cause;
  if (cause?.code === "ECONNREFUSED")
    return { line: `cannot reach the server (${(cause as Error).message}); is it running? (npm start)`, exitCode: EXIT_ERROR };
  return { line: err instanceof Error ? (err.stack ?? err.message) : String(err), exitCode: EXIT_ERROR };
}

/** The Connect code in its wire spelling (`not_found`), as connect-web and curl users see it. */
export function codeName(err: ConnectError): string {
  return CODE_NAMES[err.code] ?? String(err.code);
}

const CODE_NAMES: Record<number, string> = {
  1: "canceled",
  2: "unknown",
  3: "invalid_argument",
  4: "deadline_exceeded",
  5: "not_found",
  6: "already_exists",
  7: "permission_denied",
  8: "resource_exhausted",
  9: "failed_precondition",
  10: "aborted",
  11: "out_of_range",
  12: "unimplemented",
  13: "internal",
  14: "unavailable",
  15: "data_loss",
  16: "unauthenticated",
};
