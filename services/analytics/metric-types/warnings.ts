/** Warnings about metrics computed at results time, for a reader of the results. */
import { create } from "@bufbuild/protobuf";
import { type ResultWarning, ResultWarningSchema } from "#gen/vane/experiments/v1/experiments_pb.js";
import type { TypedMetric } from "./load.ts";

/** "retention_window_open": a retention metric left out units whose window has not ended yet. */
export function typedWarnings(metrics: readonly { key: string; typed: TypedMetric | undefined }[]): ResultWarning[] {
  return metrics.flatMap(({ key, typed }) =>
    typed && typed.unitsWaiting > 0
      ? [
          create(ResultWarningSchema, {
            code: "retention_window_open",
            metricKey: key,
            message: `${typed.unitsWaiting} exposed units are left out of retention metric "${key}": their retention window had not ended by the time of these results (or by the experiment's stop, after which they never count).`,
          }),
        ]
      : [],
  );
}
