/**
 * Helpers for test suites that use the real Postgres and NATS: unique names
 * so suites never share state, and cleanup that tolerates half-made fixtures.
 * Test code only; never imported by a service.
 */
import { randomBytes } from "node:crypto";
import { jetstreamManager, JetStreamApiError, JetStreamApiCodes } from "@nats-io/jetstream";
import { connect, type NatsConnection } from "@nats-io/transport-node";
import { ConnectError } from "@connectrpc/connect";
import pg from "pg";
import { pino, type Logger } from "pino";
import { assertSchemaName } from "#lib/data/db.ts";

/** Postgres for tests (override with `VANE_TEST_DATABASE_URL`). */
export const testDatabaseUrl: string = process.env.VANE_TEST_DATABASE_URL ?? "postgres://postgres@127.0.0.1:5432/test";

/** NATS with JetStream for tests (override with `VANE_TEST_NATS_URL`). */
export const testNatsUrl: string = process.env.VANE_TEST_NATS_URL ?? "nats://127.0.0.1:4222";

/**
 * A name unique to this run: `prefix` + `_` + 10 random lower-case hex chars.
 * Valid as a Postgres schema, a JetStream stream and a KV bucket name.
 */
export function uniqueName(prefix: string): string {
  return `${prefix}_${randomBytes(5).toString("hex")}`;
}

/** A logger that prints nothing unless `VANE_TEST_LOG` names a level. */
export function createTestLogger(): Logger {
  return pino({ level: process.env.VANE_TEST_LOG ?? "silent" });
}

/** Drops `schema` and everything in it; fine if it never existed. */
export async function dropSchema(url: string, schema: string): Promise<void> {
  assertSchemaName(schema);
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  try {
    await client.query(`drop schema if exists ${schema} cascade`);
  } finally {
    await client.end();
  }
}

/** Opens a plain NATS connection for fixtures and cleanup; close it with `drain()`. */
export function connectTestNats(url: string = testNatsUrl): Promise<NatsConnection> {
  return connect({ servers: url, name: "vane-test" });
}

/** Deletes JetStream streams (KV buckets are streams named `KV_<bucket>`); missing ones are ignored. */
export async function deleteStreams(nc: NatsConnection, names: string[]): Promise<void> {
  const jsm = await jetstreamManager(nc);
  for (const name of names) {
    try {
      await jsm.streams.delete(name);
    } catch (err) {
      if (!(err instanceof JetStreamApiError && err.code === JetStreamApiCodes.StreamNotFound)) throw err;
    }
  }
}

/** Polls `check` until it returns a truthy value (or throws after `timeoutMs`). */
export async function eventually<T>(check: () => T | Promise<T>, timeoutMs = 5_000, what = "condition"): Promise<NonNullable<T>> {
  const deadline = Date.now() + timeoutMs;
  let last: unknown;
  for (;;) {
    try {
      const v = await check();
      if (v) return v as NonNullable<T>;
    } catch (err) {
      last = err;
    }
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}${last ? `: ${String(last)}` : ""}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

/**
 * One gRPC server-reflection stream through a @grpc/grpc-js ServerReflection client: writes the
 * requests, then resolves with every answer (snake_case, as proto-loader gives them).
 */
export function reflectionStream(client: any, requests: object[]): Promise<any[]> {
  return new Promise((resolve, reject) => {
    const answers: unknown[] = [];
    const call = client.ServerReflectionInfo();
    call.on("data", (d: unknown) => answers.push(d));
    call.on("error", reject);
    call.on("end", () => resolve(answers));
    for (const r of requests) call.write(r);
    call.end();
  });
}

/** The Connect error a call that must fail ended with; throws when it succeeded. */
export async function failure(p: Promise<unknown>): Promise<ConnectError> {
  try {
    await p;
  } catch (err) {
    return ConnectError.from(err);
  }
  throw new Error("expected the call to fail");
}
