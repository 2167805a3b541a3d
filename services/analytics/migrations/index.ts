import type { Migration } from "kysely";
import * as init from "./2026_12_10_001_init.ts";
import * as eventTimeAndLifecycle from "./2026_12_12_001_event_time_and_lifecycle.ts";

/** The analytics service's migrations, in order. Static so vitest and production load them alike. */
export const migrations: Record<string, Migration> = {
  "2026_12_10_001_init": init,
  "2026_12_12_001_event_time_and_lifecycle": eventTimeAndLifecycle,
};
