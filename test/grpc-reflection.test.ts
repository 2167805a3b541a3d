/**
 * A plain gRPC client that has no Vane proto files, as grpcurl, Postman or `buf curl` work against
 * `npm start`: it lists the services through server reflection, fetches the descriptors of the one
 * it wants (and every import, by file name), builds the messages from those descriptors alone, and
 * calls it with @grpc/grpc-js — an independent gRPC stack — including a failing call's status.
 */
import { fileURLToPath } from "node:url";
import { create, createFileRegistry, fromBinary, fromJson, toBinary, toJson, type FileRegistry } from "@bufbuild/protobuf";
import { FileDescriptorProtoSchema, FileDescriptorSetSchema } from "@bufbuild/protobuf/wkt";
import * as grpc from "@grpc/grpc-js";
import * as protoLoader from "@grpc/proto-loader";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { eventually, reflectionStream } from "#test/support/harness.ts";
import { adminSession, startVane, type VaneProcess } from "./vane-process.ts";

const root = fileURLToPath(new URL("..", import.meta.url));

let vane: VaneProcess;
beforeAll(() => {
  vane = startVane();
});
afterAll(() => vane?.cleanup());

/** Every file a symbol needs, fetched as a client without protos does: by symbol, then imports by name. */
async function registryFor(client: grpc.Client, symbol: string): Promise<FileRegistry> {
  const files = new Map<string, Uint8Array>();
  const add = (answer: { file_descriptor_response?: { file_descriptor_proto: Buffer[] }; error_response?: { error_message: string } }) => {
    if (!answer.file_descriptor_response) throw new Error(`reflection: ${answer.error_response?.error_message}`);
    for (const b of answer.file_descriptor_response.file_descriptor_proto) files.set(fromBinary(FileDescriptorProtoSchema, b).name, b);
  };
  (await reflectionStream(client, [{ file_containing_symbol: symbol }])).forEach(add);
  // Ask for any import not answered yet by its file name.
  for (;;) {
    const missing = [...new Set([...files.values()].flatMap((b) => fromBinary(FileDescriptorProtoSchema, b).dependency))].filter((d) => !files.has(d));
    if (missing.length === 0) break;
    (
      await reflectionStream(
        client,
        missing.map((name) => ({ file_by_filename: name })),
      )
    ).forEach(add);
  }
  return createFileRegistry(create(FileDescriptorSetSchema, { file: [...files.values()].map((b) => fromBinary(FileDescriptorProtoSchema, b)) }));
}

describe("a gRPC client without proto files, against npm start", () => {
  it("discovers every service by reflection and evaluates a flag from the reflected descriptors", async () => {
    const started = await vane.started();
    const { call, accessToken, projectId, environmentId } = await adminSession(started, "development");
    await call(
      "vane.flags.v1.FlagService/CreateFlag",
      {
        projectId,
        key: "banner",
        name: "Banner",
        type: "FLAG_TYPE_STRING",
        variants: [
          { key: "blue", value: "blue" },
          { key: "red", value: "red" },
        ],
      },
      accessToken,
    );
    await call("vane.flags.v1.FlagService/UpdateFlagEnvironment", { environmentId, flagKey: "banner", enabled: true, defaultVariant: "blue" }, accessToken);
    const { secret } = await call<{ secret: string }>(
      "vane.identity.v1.IdentityService/CreateApiKey",
      { environmentId, kind: "API_KEY_KIND_SERVER", name: "grpc" },
      accessToken,
    );
    const { accessToken: token } = await call<{ accessToken: string }>("vane.identity.v1.AuthService/ExchangeApiKey", { apiKey: secret });

    const target = new URL(started.baseUrl).host;
    // The reflection service's own stubs, which grpcurl has built in.
    const pkg = grpc.loadPackageDefinition(
      protoLoader.loadSync("grpc/reflection/v1/reflection.proto", { includeDirs: [`${root}proto`], keepCase: true, defaults: true }),
    ) as never as {
      grpc: { reflection: { v1: { ServerReflection: new (target: string, creds: grpc.ChannelCredentials) => grpc.Client } } };
    };
    const reflection = new pkg.grpc.reflection.v1.ServerReflection(target, grpc.credentials.createInsecure());
    const plain = new grpc.Client(target, grpc.credentials.createInsecure());
    try {
      const [listed] = await reflectionStream(reflection, [{ list_services: "" }]);
      const names = (listed.list_services_response.service as { name: string }[]).map((s) => s.name);
      expect(names).toEqual(
        expect.arrayContaining([
          "grpc.health.v1.Health",
          "vane.identity.v1.AuthService",
          "vane.identity.v1.IdentityService",
          "vane.flags.v1.FlagService",
          "vane.flags.v1.SegmentService",
          "vane.evaluation.v1.EvaluationService",
          "vane.events.v1.EventService",
          "vane.experiments.v1.ExperimentService",
        ]),
      );

      const registry = await registryFor(reflection, "vane.evaluation.v1.EvaluationService");
      const service = registry.getService("vane.evaluation.v1.EvaluationService")!;
      const method = service.methods.find((m) => m.name === "Evaluate")!;
      const metadata = new grpc.Metadata();
      metadata.set("authorization", `Bearer ${token}`);
      const evaluate = (body: object) =>
        new Promise<{ ok: true; json: unknown } | { ok: false; code: number; details: string }>((resolve) =>
          plain.makeUnaryRequest(
            `/${service.typeName}/${method.name}`,
            (b: Buffer) => b,
            (b: Buffer) => b,
            Buffer.from(toBinary(method.input, fromJson(method.input, body as never))),
            metadata,
            (err, res) =>
              resolve(err ? { ok: false, code: err.code, details: err.details } : { ok: true, json: toJson(method.output, fromBinary(method.output, res!)) }),
          ),
        );

      const answer = await eventually(
        async () => {
          const r = await evaluate({ flagKey: "banner", context: { targetingKey: "u1", plan: "pro" } });
          // The flag's creation (disabled) may arrive before the version that turns it on.
          return r.ok && (r.json as { evaluation?: { reason?: string } }).evaluation?.reason !== "REASON_DISABLED" ? r : undefined;
        },
        10_000,
        "the flag, turned on, to reach the evaluator",
      );
      expect(answer.json).toMatchObject({ evaluation: { flagKey: "banner", value: "blue", variant: "blue", reason: "REASON_STATIC" } });
      // A failure is a gRPC status with the message as sent (percent-decoded by grpc-js).
      expect(await evaluate({ flagKey: "no-such-flag", context: {} })).toEqual({
        ok: false,
        code: grpc.status.NOT_FOUND,
        details: expect.stringMatching(/^flag "no-such-flag" (not found|does not exist)/),
      });
    } finally {
      reflection.close();
      plain.close();
    }
  }, 60_000);
});
