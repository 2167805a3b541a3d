/** A mutation whose caller's deadline passed before COMMIT rolls back. */
import { randomUUID } from "node:crypto";
import { Code, ConnectError } from "@connectrpc/connect";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type FlagsDeps, mutate } from "../access.ts";
import { type FlagsHarness, startFlags, type Tenant } from "./harness.ts";

describe("mutations and deadlines", () => {
  let h: FlagsHarness;
  let t: Tenant;
  let deps: FlagsDeps;
  beforeAll(async () => {
    h = await startFlags();
    t = await h.seedTenant();
    deps = {
      db: h.flags.database.db,
      directory: undefined as never,
      targets: { configChangedSubject: "unused", flagChangedSubject: "unused", channel: "unused", maxSnapshotBytes: 1 << 20 },
    };
  });
  afterAll(() => h?.close());

  const insertFlag = (key: string) => (trx: Parameters<Parameters<typeof mutate>[4]>[0]) =>
    trx
      .insertInto("flags")
      .values({
        id: randomUUID(),
        organization_id: t.orgId,
        project_id: t.projectId,
        key,
        name: key,
        description: "",
        tags: "[]",
        owner: "",
        type: "boolean",
        variants: "[]",
        client_visible: false,
        archived: false,
        version: 1,
      })
      .execute();
  const exists = async (key: string) => (await h.flags.database.db.selectFrom("flags").select("key").where("key", "=", key).executeTakeFirst()) !== undefined;

  it("does not commit when the deadline passes during the transaction", async () => {
    const ac = new AbortController();
    const err = await mutate(deps, t.projectId, "x", ac.signal, async (trx) => {
      await insertFlag("late")(trx);
      ac.abort(new ConnectError("the deadline passed", Code.DeadlineExceeded));
    }).catch((e: unknown) => ConnectError.from(e));
    expect(err).toBeInstanceOf(ConnectError);
    expect((err as ConnectError).code).toBe(Code.DeadlineExceeded);
    expect(await exists("late")).toBe(false);
  });

  it("reports a caller that went away as CANCELED, and commits when nothing was aborted", async () => {
    const ac = new AbortController();
    const err = await mutate(deps, t.projectId, "x", ac.signal, async (trx) => {
      await insertFlag("gone")(trx);
      ac.abort(new ConnectError("client went away", Code.Canceled));
    }).catch((e: unknown) => ConnectError.from(e));
    expect((err as ConnectError).code).toBe(Code.Canceled);
    expect(await exists("gone")).toBe(false);

    await mutate(deps, t.projectId, "x", new AbortController().signal, insertFlag("on-time"));
    expect(await exists("on-time")).toBe(true);
  });
});
