/**
 * Messages sent unchanged on many server streams (one change fanned out to every watcher with
 * the same context): the gRPC fast path encodes such a message once and writes the same frame to
 * each stream, instead of encoding it once per stream. A shared message must never be mutated.
 */
const frames = new WeakMap<object, Buffer | undefined>();

/** Marks `message` as shared (see the module comment) and returns it. */
export function shareMessage<T extends object>(message: T): T {
  if (!frames.has(message)) frames.set(message, undefined);
  return message;
}

/** The message's frame: `encode()` each time for an ordinary message, once for a shared one. */
export function frameOnce(message: object, encode: () => Buffer): Buffer {
  if (!frames.has(message)) return encode();
  let frame = frames.get(message);
  if (frame === undefined) frames.set(message, (frame = encode()));
  return frame;
}
