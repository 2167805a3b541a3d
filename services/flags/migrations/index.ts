import type { Migration } from "kysely";
import * as init from "./2026_12_01_001_init.ts";
import * as flagdMetadata from "./2026_12_02_001_flagd_metadata.ts";
import * as outboxParking from "./2026_12_05_001_outbox_parking.ts";

/** The flags service's migrations, in order. Static so vitest and production load them alike. */
export const migrations: Record<string, Migration> = {
  "2026_12_01_001_init": init,
  "2026_12_02_001_flagd_metadata": flagdMetadata,
  "2026_12_05_001_outbox_parking": outboxParking,
};
