import type { Migration } from "kysely";
import * as init from "./2026_11_23_001_init.ts";
import * as signingKeyRevocation from "./2026_12_02_001_signing_key_revocation.ts";
import * as environmentProtection from "./2026_12_14_001_environment_protection.ts";
import * as credentialFailures from "./2026_12_14_002_credential_failures.ts";

/** Identity's migrations, in order. Static so vitest and production load them alike. */
export const migrations: Record<string, Migration> = {
  "2026_11_23_001_init": init,
  "2026_12_02_001_signing_key_revocation": signingKeyRevocation,
  "2026_12_14_001_environment_protection": environmentProtection,
  "2026_12_14_002_credential_failures": credentialFailures,
};
