import type { Migration } from "kysely";
import * as init from "./2026_12_10_001_init.ts";
import * as eventTimeAndLifecycle from "./2026_12_12_001_event_time_and_lifecycle.ts";
import * as consumerPositions from "./2026_12_13_001_consumer_positions.ts";
import * as experimentSettings from "./2026_12_20_001_experiment_settings.ts";
import * as metricTypes from "./2026_12_20_002_metric_types.ts";

/** The analytics service's migrations, in order. Static so vitest and production load them alike. */
export const migrations: Record<string, Migration> = {
  "2026_12_10_001_init": init,
  "2026_12_12_001_event_time_and_lifecycle": eventTimeAndLifecycle,
  "2026_12_13_001_consumer_positions": consumerPositions,
  "2026_12_20_001_experiment_settings": experimentSettings,
  "2026_12_20_002_metric_types": metricTypes,
};
