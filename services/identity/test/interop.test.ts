/**
 * Interoperability with clients that are not ours: @grpc/grpc-js reading proto/ directly (not
 * gen/), a plain HTTP/1.1 JSON POST (the Connect protocol), and gRPC-Web.
 */
import { fileURLToPath } from "node:url";
import * as grpc from "@grpc/grpc-js";
import * as protoLoader from "@grpc/proto-loader";
import { fromBinary } from "@bufbuild/protobuf";
import { FileDescriptorProtoSchema } from "@bufbuild/protobuf/wkt";
import { createClient } from "@connectrpc/connect";
import { createGrpcWebTransport } from "@connectrpc/connect-node";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { AuthService } from "#gen/vane/identity/v1/auth_service_pb.js";
import { reflectionStream } from "#test/support/harness.ts";
import { writeProtoDeps } from "../../../scripts/proto-deps.ts";
import { type IdentityHarness, startIdentity, type Tenant } from "./harness.ts";

const root = fileURLToPath(new URL("../../../", import.meta.url));

type Callback<T> = (err: grpc.ServiceError | null, res: T) => void;
type Unary<Req, Res> = (req: Req, md: grpc.Metadata, cb: Callback<Res>) => void;

function load(file: string) {
  writeProtoDeps(root);
  const def = protoLoader.loadSync(file, { includeDirs: [`${root}proto`, `${root}proto-deps`], keepCase: true, enums: String, defaults: true });
  return grpc.loadPackageDefinition(def) as any;
}

function unary<Req, Res>(fn: Unary<Req, Res>, req: Req, md = new grpc.Metadata()): Promise<Res> {
  return new Promise((resolve, reject) => fn(req, md, (err, res) => (err ? reject(err) : resolve(res))));
}

describe("interoperability", () => {
  let h: IdentityHarness;
  let t: Tenant;
  let target: string;
  beforeAll(async () => {
    h = await startIdentity();
    t = await h.seedTenant();
    target = `127.0.0.1:${h.running.port}`;
  });
  afterAll(() => h?.close());

  it("answers the standard gRPC health check from @grpc/grpc-js", async () => {
    const pkg = load("grpc/health/v1/health.proto");
    const client = new pkg.grpc.health.v1.Health(target, grpc.credentials.createInsecure());
    try {
      const res = await unary<{ service: string }, { status: string }>(client.Check.bind(client), { service: "" });
      expect(res.status).toBe("SERVING");
      const svc = await unary<{ service: string }, { status: string }>(client.Check.bind(client), { service: "vane.identity.v1.IdentityService" });
      expect(svc.status).toBe("SERVING");
      await expect(unary(client.Check.bind(client), { service: "no.such.Service" })).rejects.toMatchObject({ code: grpc.status.NOT_FOUND });
    } finally {
      client.close();
    }
  });

  it("serves identity calls to @grpc/grpc-js with metadata and status codes", async () => {
    const pkg = load("vane/identity/v1/auth_service.proto");
    const client = new pkg.vane.identity.v1.AuthService(target, grpc.credentials.createInsecure());
    try {
      const md = new grpc.Metadata();
      md.set("authorization", `Bearer ${t.ownerToken}`);
      const res = await unary<object, { principal: { organization_id: string; role: string } }>(client.WhoAmI.bind(client), {}, md);
      expect(res.principal).toMatchObject({ organization_id: t.orgId, role: "ROLE_OWNER" });
      await expect(unary(client.WhoAmI.bind(client), {})).rejects.toMatchObject({ code: grpc.status.UNAUTHENTICATED });
      await expect(unary(client.ExchangeApiKey.bind(client), { api_key: "short" })).rejects.toMatchObject({ code: grpc.status.INVALID_ARGUMENT });
    } finally {
      client.close();
    }
  });

  it("describes every service through gRPC server reflection (v1 and v1alpha)", async () => {
    for (const version of ["v1", "v1alpha"]) {
      const pkg = load(`grpc/reflection/${version}/reflection.proto`);
      const client = new pkg.grpc.reflection[version].ServerReflection(target, grpc.credentials.createInsecure());
      try {
        const answers = await reflectionStream(client, [
          { list_services: "" },
          { file_containing_symbol: "vane.identity.v1.IdentityService" },
          { file_containing_symbol: "vane.identity.v1.AuthService.WhoAmI" },
          { file_by_filename: "no/such.proto" },
        ]);
        const names = answers[0].list_services_response.service.map((s: { name: string }) => s.name);
        expect(names).toEqual(
          expect.arrayContaining([
            "grpc.health.v1.Health",
            "vane.identity.v1.AuthService",
            "vane.identity.v1.IdentityService",
            `grpc.reflection.${version}.ServerReflection`,
          ]),
        );
        // The file and every import, so a client can build the whole schema.
        const files = answers[1].file_descriptor_response.file_descriptor_proto as Buffer[];
        expect(files.length).toBeGreaterThanOrEqual(4);
        expect(files.some((f) => f.includes("buf/validate/validate.proto"))).toBe(true);
        expect(answers[2].file_descriptor_response.file_descriptor_proto.length).toBeGreaterThan(0);
        expect(answers[3].error_response.error_code).toBe(grpc.status.NOT_FOUND);

        // As grpcurl and Postman do: fetch each file and import by the name the descriptors give.
        const decoded = files.map((f) => fromBinary(FileDescriptorProtoSchema, f));
        const wanted = [...new Set(decoded.flatMap((d) => [d.name, ...d.dependency]))];
        expect(wanted).toEqual(
          expect.arrayContaining(["vane/identity/v1/identity_service.proto", "google/protobuf/timestamp.proto", "buf/validate/validate.proto"]),
        );
        const byName = await reflectionStream(
          client,
          wanted.map((name) => ({ file_by_filename: name })),
        );
        expect(byName.map((a, i) => [wanted[i], a.file_descriptor_response ? "found" : a.error_response?.error_message])).toEqual(
          wanted.map((w) => [w, "found"]),
        );
        for (const [i, a] of byName.entries()) {
          const own = (a.file_descriptor_response.file_descriptor_proto as Buffer[]).map((f) => fromBinary(FileDescriptorProtoSchema, f).name);
          expect(own).toContain(wanted[i]);
        }
      } finally {
        client.close();
      }
    }
  });

  it("speaks the Connect protocol to a plain HTTP/1.1 JSON POST", async () => {
    const res = await fetch(`${h.baseUrl}/vane.identity.v1.AuthService/WhoAmI`, {
      method: "POST",
      headers: { "content-type": "application/json", authorization: `Bearer ${t.ownerToken}` },
      body: "{}",
    });
    expect(res.status).toBe(200);
    expect(await res.json()).toMatchObject({ principal: { organizationId: t.orgId, role: "ROLE_OWNER" } });
    const bad = await fetch(`${h.baseUrl}/vane.identity.v1.AuthService/ExchangeApiKey`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ apiKey: "short" }),
    });
    expect(bad.status).toBe(400);
    expect(await bad.json()).toMatchObject({ code: "invalid_argument" });
  });

  it("serves gRPC-Web, and answers CORS preflights for browsers", async () => {
    const client = createClient(AuthService, createGrpcWebTransport({ baseUrl: h.baseUrl, httpVersion: "1.1" }));
    const { principal } = await client.whoAmI({}, { headers: { authorization: `Bearer ${t.ownerToken}` } });
    expect(principal?.organizationId).toBe(t.orgId);
    const pre = await fetch(`${h.baseUrl}/vane.identity.v1.AuthService/WhoAmI`, {
      method: "OPTIONS",
      headers: { origin: "https://app.example", "access-control-request-method": "POST", "access-control-request-headers": "authorization,content-type" },
    });
    expect(pre.status).toBe(204);
    expect(pre.headers.get("access-control-allow-origin")).toBe("*");
    expect(pre.headers.get("access-control-allow-headers")?.toLowerCase()).toContain("authorization");
    expect(pre.headers.get("access-control-allow-headers")?.toLowerCase()).toContain("traceparent");
  });
});
