/** Storage types of the analytics service. */
import type { Kysely, Transaction } from "kysely";
import type { AnalyticsDatabase } from "./schema.ts";

export type Db = Kysely<AnalyticsDatabase>;
export type Trx = Transaction<AnalyticsDatabase>;
