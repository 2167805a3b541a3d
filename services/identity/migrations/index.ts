import type { Migration } from "kysely";
import * as init from "./2026_11_23_001_init.ts";
import * as signingKeyRevocation from "./2026_12_02_001_signing_key_revocation.ts";

/** Identity's migrations, in order. Static so vitest and production load them alike. */
export const migrations: Record<string, Migration> = {
  "2026_11_23_001_init": init,
  "2026_12_02_001_signing_key_revocation": signingKeyRevocation,
};
