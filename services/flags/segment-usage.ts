/**
 * Where segments are used: which flags' rules name each segment, in which environments. Read
 * from the stored rules (proto JSON: `conditions[].segment.segmentKey`), archived flags included
 * (their rules still name the segment, and DeleteSegment refuses them too).
 */
import { create } from "@bufbuild/protobuf";
import { sql } from "kysely";
import { type SegmentReference, SegmentReferenceSchema } from "#gen/vane/flags/v1/segment_service_pb.js";
import type { Db, Trx } from "./store.ts";

interface UsageRow {
  segment_key: string;
  flag_key: string;
  flag_archived: boolean;
  environment_id: string;
}

/** Segment key → the flags using it (ordered by flag key, environments by id); `key` limits it to one segment. */
export async function segmentUsage(db: Db | Trx, projectId: string, key?: string): Promise<Map<string, SegmentReference[]>> {
  const only = key === undefined ? sql`` : sql`and c->'segment'->>'segmentKey' = ${key}`;
  const { rows } = await sql<UsageRow>`
    select distinct c->'segment'->>'segmentKey' as segment_key, f.key as flag_key, f.archived as flag_archived, fe.environment_id::text as environment_id
    from flag_environments fe
    join flags f on f.id = fe.flag_id
    cross join lateral jsonb_array_elements(fe.rules) as r
    cross join lateral jsonb_array_elements(coalesce(r->'conditions', '[]'::jsonb)) as c
    where fe.project_id = ${projectId} and c ? 'segment' ${only}
    order by segment_key, flag_key, environment_id`.execute(db);
  const out = new Map<string, SegmentReference[]>();
  for (const row of rows) {
    let refs = out.get(row.segment_key);
    if (!refs) out.set(row.segment_key, (refs = []));
    let ref = refs.at(-1);
    if (ref?.flagKey !== row.flag_key) refs.push((ref = create(SegmentReferenceSchema, { flagKey: row.flag_key, flagArchived: row.flag_archived })));
    ref.environmentIds.push(row.environment_id);
  }
  return out;
}
