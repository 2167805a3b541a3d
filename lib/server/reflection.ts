/**
 * gRPC server reflection (grpc.reflection.v1 and v1alpha), answered from the descriptors that
 * protoc-gen-es embeds in gen/, so grpcurl, Postman and `buf curl` need no local proto files.
 */
import { create, createRegistry, type DescFile, type DescService, fromBinary, toBinary } from "@bufbuild/protobuf";
import { FileDescriptorProtoSchema } from "@bufbuild/protobuf/wkt";
import type { ServiceImpl } from "@connectrpc/connect";
import * as v1 from "#gen/grpc/reflection/v1/reflection_pb.js";
import * as v1alpha from "#gen/grpc/reflection/v1alpha/reflection_pb.js";

type Request = v1.ServerReflectionRequest;
type Response = v1.ServerReflectionResponse;

/** Collects a file and its transitive imports, dependencies first. */
function withDependencies(file: DescFile, seen = new Set<string>(), out: DescFile[] = []): DescFile[] {
  if (seen.has(file.name)) return out;
  seen.add(file.name);
  for (const dep of file.dependencies) withDependencies(dep, seen, out);
  out.push(file);
  return out;
}

/** Answers reflection questions about the given services (and the reflection services themselves). */
export function createReflectionResolver(services: DescService[]) {
  const all = [...services, v1.ServerReflection, v1alpha.ServerReflection];
  const files_ = new Map<string, DescFile>();
  // Keyed by the file's path as imports spell it ("google/protobuf/timestamp.proto"); protobuf-es's
  // DescFile.name drops the ".proto".
  for (const s of all) for (const f of withDependencies(s.file)) files_.set(f.proto.name, f);
  const registry = createRegistry(...files_.values());
  const serviceNames = [...new Set(all.map((s) => s.typeName))].sort();

  const encode = (file: DescFile) => withDependencies(file).map((f) => toBinary(FileDescriptorProtoSchema, f.proto));

  /** Finds the file declaring a symbol: a type, a service, a method, an enum value or a field. */
  function fileOfSymbol(symbol: string): DescFile | undefined {
    const direct = registry.get(symbol);
    if (direct) return direct.file;
    const parent = symbol.slice(0, Math.max(0, symbol.lastIndexOf(".")));
    const owner = parent ? registry.get(parent) : undefined;
    if (owner?.kind === "service" || owner?.kind === "message" || owner?.kind === "enum") return owner.file;
    return undefined;
  }

  return function answer(req: Request): Response["messageResponse"] {
    const notFound = (what: string) => ({
      case: "errorResponse" as const,
      value: create(v1.ErrorResponseSchema, { errorCode: 5, errorMessage: `${what} not found` }),
    });
    const files = (f: DescFile | undefined, what: string) =>
      f ? { case: "fileDescriptorResponse" as const, value: create(v1.FileDescriptorResponseSchema, { fileDescriptorProto: encode(f) }) } : notFound(what);
    const r = req.messageRequest;
    switch (r.case) {
      case "listServices":
        return {
          case: "listServicesResponse",
          value: create(v1.ListServiceResponseSchema, { service: serviceNames.map((name) => create(v1.ServiceResponseSchema, { name })) }),
        };
      case "fileByFilename":
        return files(files_.get(r.value), `file "${r.value}"`);
      case "fileContainingSymbol":
        return files(fileOfSymbol(r.value), `symbol "${r.value}"`);
      case "fileContainingExtension": {
        const msg = registry.getMessage(r.value.containingType);
        const ext = msg && registry.getExtensionFor(msg, r.value.extensionNumber);
        return files(ext?.file, `extension ${r.value.extensionNumber} of "${r.value.containingType}"`);
      }
      case "allExtensionNumbersOfType": {
        const msg = registry.getMessage(r.value);
        if (!msg) return notFound(`type "${r.value}"`);
        const numbers: number[] = [];
        for (const t of registry) if (t.kind === "extension" && t.extendee.typeName === msg.typeName) numbers.push(t.number);
        return {
          case: "allExtensionNumbersResponse",
          value: create(v1.ExtensionNumberResponseSchema, { baseTypeName: msg.typeName, extensionNumber: numbers.sort((a, b) => a - b) }),
        };
      }
      default:
        return {
          case: "errorResponse",
          value: create(v1.ErrorResponseSchema, { errorCode: 3, errorMessage: "empty reflection request" }),
        };
    }
  };
}

/** Both reflection service implementations, over one resolver. */
export function createReflectionServices(services: DescService[]) {
  const answer = createReflectionResolver(services);
  const impl1: ServiceImpl<typeof v1.ServerReflection> = {
    async *serverReflectionInfo(requests) {
      for await (const req of requests) {
        yield create(v1.ServerReflectionResponseSchema, { validHost: req.host, originalRequest: req, messageResponse: answer(req) });
      }
    },
  };
  // v1alpha messages are wire-identical to v1; convert through the binary form.
  const implAlpha: ServiceImpl<typeof v1alpha.ServerReflection> = {
    async *serverReflectionInfo(requests) {
      for await (const req of requests) {
        const asV1 = fromBinary(v1.ServerReflectionRequestSchema, toBinary(v1alpha.ServerReflectionRequestSchema, req));
        const res = create(v1.ServerReflectionResponseSchema, { validHost: req.host, originalRequest: asV1, messageResponse: answer(asV1) });
        yield fromBinary(v1alpha.ServerReflectionResponseSchema, toBinary(v1.ServerReflectionResponseSchema, res));
      }
    },
  };
  return { v1: impl1, v1alpha: implAlpha };
}
