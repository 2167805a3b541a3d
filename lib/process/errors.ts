/**
 * Constructors for the ConnectErrors services raise, so codes stay consistent and messages
 * stay short, actionable and free of secrets.
 */
import { Code, ConnectError } from "@connectrpc/connect";

/** NOT_FOUND. Also what a caller gets for another organization's ids: existence never leaks. */
export const notFound = (what: string) => new ConnectError(`${what} not found`, Code.NotFound);
export const alreadyExists = (what: string) => new ConnectError(`${what} already exists`, Code.AlreadyExists);
export const invalidArgument = (message: string) => new ConnectError(message, Code.InvalidArgument);
export const failedPrecondition = (message: string) => new ConnectError(message, Code.FailedPrecondition);
export const permissionDenied = (message: string) => new ConnectError(message, Code.PermissionDenied);
export const unauthenticated = (message: string) => new ConnectError(message, Code.Unauthenticated);
export const aborted = (message: string) => new ConnectError(message, Code.Aborted);
export const unavailable = (message: string) => new ConnectError(message, Code.Unavailable);
export const resourceExhausted = (message: string) => new ConnectError(message, Code.ResourceExhausted);
