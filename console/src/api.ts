/** The console's one Connect-Web transport: same origin as the page, the session's bearer token on every call. */
import { Code, ConnectError, type Interceptor } from "@connectrpc/connect";
import { createConnectTransport } from "@connectrpc/connect-web";
import { signOut, token } from "./session.ts";

const bearer: Interceptor = (next) => async (req) => {
  const t = token();
  if (t) req.header.set("authorization", `Bearer ${t}`);
  try {
    return await next(req);
  } catch (err) {
    if (ConnectError.from(err).code === Code.Unauthenticated) signOut();
    throw err;
  }
};

export const transport = createConnectTransport({ baseUrl: location.origin, interceptors: [bearer] });

/** A failed call as a person reads it: the code's meaning and the server's message. */
export function describeError(err: unknown): string {
  const e = ConnectError.from(err);
  switch (e.code) {
    case Code.Aborted:
    case Code.FailedPrecondition:
      return e.rawMessage.includes("version")
        ? `Changed by someone else meanwhile — reload to see their change, then apply yours again. (${e.rawMessage})`
        : e.rawMessage;
    case Code.PermissionDenied:
      return `Your role cannot do this: ${e.rawMessage}`;
    case Code.Unavailable:
      return `Vane is unavailable right now — try again in a moment. (${e.rawMessage})`;
    case Code.InvalidArgument:
      return e.rawMessage;
    default:
      return `${Code[e.code]}: ${e.rawMessage}`;
  }
}
