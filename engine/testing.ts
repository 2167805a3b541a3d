/**
 * Reference implementations the engine's tests, and the tests of its users, check against: a
 * byte-by-byte MurmurHash3 and flagd's bucketing written the plain way. Not for production paths.
 */
export { referenceMurmur3, referenceBucket } from "./reference-murmur3.ts";
