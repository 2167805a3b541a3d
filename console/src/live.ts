/**
 * Live updates: the project's change feed (ChangeService.WatchChanges, a Connect server stream
 * over fetch) invalidates what the page shows, so another person's change appears without a
 * reload. The stream resumes after the last sequence seen when it is cut.
 */
import { createClient } from "@connectrpc/connect";
import { useQueryClient } from "@tanstack/react-query";
import { useEffect } from "react";
import { ChangeService } from "#gen/vane/flags/v1/change_service_pb.js";
import { transport } from "./api.ts";

export function useLiveChanges(projectId: string | undefined): void {
  const qc = useQueryClient();
  useEffect(() => {
    if (!projectId) return;
    const abort = new AbortController();
    const client = createClient(ChangeService, transport);
    let after: bigint | undefined;
    void (async () => {
      while (!abort.signal.aborted) {
        try {
          for await (const res of client.watchChanges({ projectId, resumeAfterSequence: after }, { signal: abort.signal })) {
            if (res.sequence > 0n) after = res.sequence;
            if (res.changes.length > 0 || res.resyncRequired) await qc.invalidateQueries();
          }
        } catch {
          // Cut (a deploy, the network): wait a little and resume.
        }
        if (!abort.signal.aborted) await new Promise((r) => setTimeout(r, 2_000));
      }
    })();
    return () => abort.abort();
  }, [projectId, qc]);
}
