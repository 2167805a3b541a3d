/**
 * Requests that do not decode are INVALID_ARGUMENT naming what is wrong, over the real wire in
 * every protocol: gRPC through the fast path and through Connect's handler (an independent gRPC
 * client, @grpc/grpc-js, sending raw bytes), gRPC-Web, Connect binary unary and streaming, and
 * Connect JSON whose body is not UTF-8.
 */
import { BinaryWriter, WireType } from "@bufbuild/protobuf/wire";
import { create, fromBinary } from "@bufbuild/protobuf";
import { Code } from "@connectrpc/connect";
import { errorFromJsonBytes } from "@connectrpc/connect/protocol-connect";
import { trailerParse } from "@connectrpc/connect/protocol-grpc-web";
import * as grpc from "@grpc/grpc-js";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { EvaluateAllResponseSchema, EvaluateResponseSchema, EvaluationService } from "#gen/vane/evaluation/v1/evaluation_service_pb.js";
import { CreateFlagRequestSchema, FlagService } from "#gen/vane/flags/v1/flag_service_pb.js";
import { createHealthRegistry } from "#lib/server/health.ts";
import { describeBinaryDecodeFailure, firstInvalidUtf8, strictJsonTextDecoder } from "#lib/server/request-decoding.ts";
import { createServer, serve, type VaneServer } from "#lib/server/server.ts";
import { createTestLogger } from "#test/support/harness.ts";

const BAD = Uint8Array.from([0x61, 0xff, 0x62]); // "a", a byte that never occurs in UTF-8, "b"
const GARBAGE = Uint8Array.from([0x0a, 0x7f, 0x01]); // a field promising 127 bytes, holding 1
const LD = WireType.LengthDelimited;

/** EvaluateRequest { flag_key, context: Struct { fields: { "email": Value { string_value } } } } */
function evaluateRequest(flagKey: Uint8Array, email: Uint8Array): Uint8Array {
  const value = new BinaryWriter().tag(3, LD).bytes(email).finish();
  const entry = new BinaryWriter().tag(1, LD).string("email").tag(2, LD).bytes(value).finish();
  const struct = new BinaryWriter().tag(1, LD).bytes(entry).finish();
  return new BinaryWriter().tag(1, LD).bytes(flagKey).tag(2, LD).bytes(struct).finish();
}
/** CreateFlagRequest { key: "k", variants: [{ key: "on" }, { key: `variantKey` }] } */
function createFlagRequest(variantKey: Uint8Array): Uint8Array {
  const w = new BinaryWriter().tag(2, LD).string("k");
  w.tag(8, LD).bytes(new BinaryWriter().tag(1, LD).string("on").finish());
  w.tag(8, LD).bytes(new BinaryWriter().tag(1, LD).bytes(variantKey).finish());
  return w.finish();
}
/** grpc.health.v1.HealthCheckRequest { service } */
const healthRequest = (service: Uint8Array) => new BinaryWriter().tag(1, LD).bytes(service).finish();
const ascii = (s: string) => new TextEncoder().encode(s);

function envelope(message: Uint8Array, flags = 0): Buffer {
  const out = Buffer.alloc(5 + message.length);
  out[0] = flags;
  out.writeUInt32BE(message.length, 1);
  out.set(message, 5);
  return out;
}

let server: VaneServer;
let baseUrl: string;
let grpcClient: grpc.Client;
const evaluated: string[] = [];

beforeAll(async () => {
  server = createServer({
    port: 0,
    host: "127.0.0.1",
    logger: createTestLogger(),
    health: createHealthRegistry({ cacheMs: 0 }),
    services: [
      {
        ...serve(EvaluationService, {
          evaluate(req) {
            evaluated.push(req.flagKey);
            return create(EvaluateResponseSchema, {});
          },
          evaluateAll: () => create(EvaluateAllResponseSchema, {}),
          async *watch() {},
        }),
        fastUnary: true,
      },
      // Served by Connect's handler; nothing is implemented: a request that does not decode
      // never reaches the implementation.
      { service: FlagService, impl: {} },
    ],
  });
  const port = await server.listen();
  baseUrl = `http://127.0.0.1:${port}`;
  grpcClient = new grpc.Client(`127.0.0.1:${port}`, grpc.credentials.createInsecure());
});
afterAll(async () => {
  grpcClient?.close();
  await server?.close();
});

const raw = (b: Buffer) => b;

/** A unary call with these exact request bytes through grpc-js; resolves with the status it ended with. */
function grpcUnary(path: string, body: Uint8Array): Promise<{ code: number; details: string }> {
  return new Promise((resolve) => {
    grpcClient.makeUnaryRequest(path, raw, raw, Buffer.from(body), (err) => resolve(err ? { code: err.code, details: err.details } : { code: 0, details: "" }));
  });
}

/** A server-streaming call with these exact request bytes through grpc-js. */
function grpcServerStream(path: string, body: Uint8Array): Promise<{ code: number; details: string }> {
  return new Promise((resolve) => {
    const call = grpcClient.makeServerStreamRequest(path, raw, raw, Buffer.from(body));
    call.on("data", () => undefined);
    call.on("error", (err: grpc.ServiceError) => resolve({ code: err.code, details: err.details }));
    call.on("end", () => resolve({ code: 0, details: "" }));
  });
}

describe("gRPC (an independent client sending raw bytes)", () => {
  it("fast path: garbage is INVALID_ARGUMENT naming the type", async () => {
    const status = await grpcUnary("/vane.evaluation.v1.EvaluationService/Evaluate", GARBAGE);
    expect(status.code).toBe(grpc.status.INVALID_ARGUMENT);
    expect(status.details).toMatch(/^the request is not a valid vane\.evaluation\.v1\.EvaluateRequest in protobuf binary \(premature EOF\)/);
  });

  it("fast path: a string that is not UTF-8 is INVALID_ARGUMENT naming the field, also deep in a Struct", async () => {
    expect(await grpcUnary("/vane.evaluation.v1.EvaluationService/Evaluate", evaluateRequest(BAD, ascii("ann@example.com")))).toEqual({
      code: grpc.status.INVALID_ARGUMENT,
      details: "flag_key: not valid UTF-8 (protobuf strings must be UTF-8)",
    });
    expect(await grpcUnary("/vane.evaluation.v1.EvaluationService/Evaluate", evaluateRequest(ascii("flag"), BAD))).toEqual({
      code: grpc.status.INVALID_ARGUMENT,
      details: `context.fields["email"].string_value: not valid UTF-8 (protobuf strings must be UTF-8)`,
    });
    // And a good request still works on the same connection.
    expect(await grpcUnary("/vane.evaluation.v1.EvaluationService/Evaluate", evaluateRequest(ascii("flag"), ascii("ann@example.com")))).toEqual({
      code: 0,
      details: "",
    });
    expect(evaluated).toEqual(["flag"]);
  });

  it("Connect's handler: the same answers", async () => {
    const garbage = await grpcUnary("/vane.flags.v1.FlagService/CreateFlag", GARBAGE);
    expect(garbage.code).toBe(grpc.status.INVALID_ARGUMENT);
    expect(garbage.details).toMatch(/^the request is not a valid vane\.flags\.v1\.CreateFlagRequest in protobuf binary/);
    expect(await grpcUnary("/vane.flags.v1.FlagService/CreateFlag", createFlagRequest(BAD))).toEqual({
      code: grpc.status.INVALID_ARGUMENT,
      details: "variants[1].key: not valid UTF-8 (protobuf strings must be UTF-8)",
    });
  });

  it("Connect's handler, server stream: the same answer", async () => {
    expect(await grpcServerStream("/grpc.health.v1.Health/Watch", healthRequest(BAD))).toEqual({
      code: grpc.status.INVALID_ARGUMENT,
      details: "service: not valid UTF-8 (protobuf strings must be UTF-8)",
    });
  });
});

describe("gRPC-Web and Connect (fetch with raw bytes)", () => {
  const post = (path: string, contentType: string, body: Uint8Array) =>
    fetch(`${baseUrl}/${path}`, { method: "POST", headers: { "content-type": contentType }, body });

  it("gRPC-Web: the status frame says INVALID_ARGUMENT and names the field", async () => {
    const res = await post("vane.flags.v1.FlagService/CreateFlag", "application/grpc-web+proto", envelope(createFlagRequest(BAD)));
    const body = new Uint8Array(await res.arrayBuffer());
    expect(body[0] & 0x80).toBe(0x80);
    const trailer = trailerParse(body.subarray(5));
    expect(trailer.get("grpc-status")).toBe(String(Code.InvalidArgument));
    expect(decodeURIComponent(trailer.get("grpc-message")!)).toBe("variants[1].key: not valid UTF-8 (protobuf strings must be UTF-8)");
  });

  it("Connect binary, unary: 400 invalid_argument naming the field or the type", async () => {
    for (const [path, body, message] of [
      ["vane.flags.v1.FlagService/CreateFlag", createFlagRequest(BAD), "variants[1].key: not valid UTF-8 (protobuf strings must be UTF-8)"],
      [
        "vane.evaluation.v1.EvaluationService/Evaluate",
        evaluateRequest(ascii("x"), BAD),
        `context.fields["email"].string_value: not valid UTF-8 (protobuf strings must be UTF-8)`,
      ],
    ] as const) {
      const res = await post(path, "application/proto", body);
      expect(res.status).toBe(400);
      expect(await res.json()).toEqual({ code: "invalid_argument", message });
    }
    const res = await post("vane.flags.v1.FlagService/CreateFlag", "application/proto", GARBAGE);
    expect(res.status).toBe(400);
    expect(((await res.json()) as { message: string }).message).toMatch(/^the request is not a valid vane\.flags\.v1\.CreateFlagRequest/);
  });

  it("Connect binary, server stream: the end-stream message says invalid_argument", async () => {
    const res = await post("grpc.health.v1.Health/Watch", "application/connect+proto", envelope(healthRequest(BAD)));
    const body = new Uint8Array(await res.arrayBuffer());
    expect(body[0] & 0x02).toBe(0x02);
    const end = JSON.parse(new TextDecoder().decode(body.subarray(5))) as { error: { code: string; message: string } };
    expect(end.error).toEqual({ code: "invalid_argument", message: "service: not valid UTF-8 (protobuf strings must be UTF-8)" });
  });

  it("Connect JSON that is not UTF-8 is refused saying where, not read as something else", async () => {
    // The invalid byte in a field name made the field unknown (ignored), so the request looked
    // empty and the error named another field.
    const body = Buffer.concat([
      Buffer.from('{"projectId":"0b7a3c1e-8a4e-4c55-9f0e-2f1b7a0c9d11","k'),
      Buffer.from([0xff]),
      Buffer.from('ey":"new-checkout"}'),
    ]);
    const res = await post("vane.flags.v1.FlagService/CreateFlag", "application/json", body);
    expect(res.status).toBe(400);
    expect(await res.json()).toEqual({
      code: "invalid_argument",
      message: `the request body is not valid UTF-8 (byte 0xff at offset ${body.indexOf(0xff)}): JSON must be encoded in UTF-8`,
    });
    // In a value, too (it was silently replaced by U+FFFD).
    const inValue = await post(
      "vane.evaluation.v1.EvaluationService/Evaluate",
      "application/json",
      Buffer.concat([Buffer.from('{"flagKey":"a'), Buffer.from([0xc3]), Buffer.from('"}')]),
    );
    expect(inValue.status).toBe(400);
    expect(errorFromJsonBytes(new Uint8Array(await inValue.arrayBuffer()), undefined, new Error() as never).code).toBe(Code.InvalidArgument);
    // Valid UTF-8 beyond ASCII is fine.
    const fine = await post("vane.evaluation.v1.EvaluationService/Evaluate", "application/json", Buffer.from('{"flagKey":"café-☕"}'));
    expect(fine.status).toBe(200);
    expect(evaluated.at(-1)).toBe("café-☕");
  });
});

describe("the diagnosis", () => {
  it("finds the first byte that is not UTF-8, including overlongs, surrogates and truncations", () => {
    expect(firstInvalidUtf8(ascii("plain ascii, é, ☕, 𝄞"))).toBe(-1);
    expect(firstInvalidUtf8(Uint8Array.from([0x41, 0xc0, 0x80]))).toBe(1); // overlong NUL
    expect(firstInvalidUtf8(Uint8Array.from([0x41, 0x42, 0xed, 0xa0, 0x80]))).toBe(2); // a surrogate
    expect(firstInvalidUtf8(Uint8Array.from([0xf4, 0x90, 0x80, 0x80]))).toBe(0); // past U+10FFFF
    expect(firstInvalidUtf8(Uint8Array.from([0x41, 0xe2, 0x98]))).toBe(1); // cut short
    expect(() => strictJsonTextDecoder.decode(Uint8Array.from([0x7b, 0xfe]))).toThrow(/byte 0xfe at offset 1/);
  });

  it("names map keys and entries, and falls back to the type when it cannot walk the bytes", () => {
    expect(describeBinaryDecodeFailure(CreateFlagRequestSchema, createFlagRequest(ascii("ok")), "x")).toMatch(
      /not a valid vane\.flags\.v1\.CreateFlagRequest in protobuf binary \(x\)/,
    );
    expect(() => fromBinary(CreateFlagRequestSchema, createFlagRequest(BAD))).toThrow();
    expect(describeBinaryDecodeFailure(CreateFlagRequestSchema, undefined, "invalid UTF-8")).toBe(
      "a string field of vane.flags.v1.CreateFlagRequest is not valid UTF-8 (protobuf strings must be UTF-8)",
    );
  });
});
