/**
 * Prints a FileDescriptorProto back as `.proto` source.
 *
 * Why: the Buf Schema Registry is out of reach and no third-party `.proto` may be committed,
 * but `@bufbuild/protovalidate` ships the complete descriptor of `buf/validate/validate.proto`.
 * Printing it gives buf a structurally identical file to compile our rules against. Options on
 * the printed file's own fields (its CEL documentation) are left out: they never reach our
 * generated code, which imports the npm package's descriptor at runtime.
 */
import { isFieldSet } from "@bufbuild/protobuf";
import {
  type DescriptorProto,
  type EnumDescriptorProto,
  type FieldDescriptorProto,
  FieldDescriptorProto_Label as Label,
  FieldDescriptorProtoSchema,
  FieldDescriptorProto_Type as Type,
  type FileDescriptorProto,
} from "@bufbuild/protobuf/wkt";

const scalarNames: Partial<Record<Type, string>> = {
  [Type.DOUBLE]: "double",
  [Type.FLOAT]: "float",
  [Type.INT64]: "int64",
  [Type.UINT64]: "uint64",
  [Type.INT32]: "int32",
  [Type.FIXED64]: "fixed64",
  [Type.FIXED32]: "fixed32",
  [Type.BOOL]: "bool",
  [Type.STRING]: "string",
  [Type.BYTES]: "bytes",
  [Type.UINT32]: "uint32",
  [Type.SFIXED32]: "sfixed32",
  [Type.SFIXED64]: "sfixed64",
  [Type.SINT32]: "sint32",
  [Type.SINT64]: "sint64",
};

/** Highest field number; an extension range ending here prints as `max`. */
const MAX_FIELD_END = 536870912;

/** Returns `.proto` source for the descriptor. Supports proto2 and proto3 files. */
export function printProto(file: FileDescriptorProto): string {
  const syntax = file.syntax === "" ? "proto2" : file.syntax;
  if (syntax === "editions") throw new Error(`${file.name}: editions files are not supported`);
  const out: string[] = [`// Printed from a compiled descriptor by scripts/print-proto.ts. Do not edit.`];
  out.push(`syntax = "${syntax}";`, "");
  if (file.package) out.push(`package ${file.package};`, "");
  for (const dep of file.dependency) out.push(`import "${dep}";`);
  if (file.dependency.length) out.push("");
  const proto2 = syntax === "proto2";
  for (const m of file.messageType) printMessage(out, m, "", proto2);
  for (const e of file.enumType) printEnum(out, e, "");
  printExtends(out, file.extension, "", proto2);
  return out.join("\n") + "\n";
}

/** proto2 presence: protobuf-es reports an unset oneof_index as 0, so ask whether it is set. */
function oneofOf(f: FieldDescriptorProto): number | undefined {
  if (f.proto3Optional) return undefined;
  return isFieldSet(f, FieldDescriptorProtoSchema.field.oneofIndex) ? f.oneofIndex : undefined;
}

function printMessage(out: string[], m: DescriptorProto, ind: string, proto2: boolean): void {
  out.push(`${ind}message ${m.name} {`);
  const inner = ind + "  ";
  const byOneof = new Map<number, FieldDescriptorProto[]>();
  for (const f of m.field) {
    const o = oneofOf(f);
    if (o !== undefined) byOneof.set(o, [...(byOneof.get(o) ?? []), f]);
  }
  const printedOneofs = new Set<number>();
  for (const f of m.field) {
    const o = oneofOf(f);
    if (o !== undefined) {
      // A oneof prints once, where its first field appears, keeping field order stable.
      if (printedOneofs.has(o)) continue;
      printedOneofs.add(o);
      out.push(`${inner}oneof ${m.oneofDecl[o].name} {`);
      for (const of of byOneof.get(o) ?? []) out.push(`${inner}  ${fieldLine(of, m, false)}`);
      out.push(`${inner}}`);
      continue;
    }
    out.push(`${inner}${fieldLine(f, m, proto2)}`);
  }
  for (const n of m.nestedType) {
    if (n.options?.mapEntry) continue;
    printMessage(out, n, inner, proto2);
  }
  for (const e of m.enumType) printEnum(out, e, inner);
  for (const r of m.extensionRange) {
    out.push(`${inner}extensions ${r.start} to ${r.end >= MAX_FIELD_END ? "max" : r.end - 1};`);
  }
  for (const r of m.reservedRange) {
    out.push(`${inner}reserved ${r.start === r.end - 1 ? r.start : `${r.start} to ${r.end - 1}`};`);
  }
  if (m.reservedName.length) out.push(`${inner}reserved ${m.reservedName.map((n) => `"${n}"`).join(", ")};`);
  printExtends(out, m.extension, inner, proto2);
  out.push(`${ind}}`);
}

function printEnum(out: string[], e: EnumDescriptorProto, ind: string): void {
  out.push(`${ind}enum ${e.name} {`);
  if (e.options?.allowAlias) out.push(`${ind}  option allow_alias = true;`);
  for (const v of e.value) out.push(`${ind}  ${v.name} = ${v.number};`);
  for (const r of e.reservedRange) out.push(`${ind}  reserved ${r.start === r.end ? r.start : `${r.start} to ${r.end}`};`);
  if (e.reservedName.length) out.push(`${ind}  reserved ${e.reservedName.map((n) => `"${n}"`).join(", ")};`);
  out.push(`${ind}}`);
}

function printExtends(out: string[], exts: FieldDescriptorProto[], ind: string, proto2: boolean): void {
  const byExtendee = new Map<string, FieldDescriptorProto[]>();
  for (const x of exts) byExtendee.set(x.extendee, [...(byExtendee.get(x.extendee) ?? []), x]);
  for (const [extendee, list] of byExtendee) {
    out.push(`${ind}extend ${extendee} {`);
    for (const x of list) out.push(`${ind}  ${fieldLine(x, undefined, proto2)}`);
    out.push(`${ind}}`);
  }
}

function fieldLine(f: FieldDescriptorProto, owner: DescriptorProto | undefined, proto2: boolean): string {
  const map = owner && mapEntry(f, owner);
  let label = "";
  if (map) label = "";
  else if (f.label === Label.REPEATED) label = "repeated ";
  else if (f.label === Label.REQUIRED) label = "required ";
  else if (f.proto3Optional || (proto2 && oneofOf(f) === undefined)) label = "optional ";
  const type = map ?? scalarNames[f.type] ?? f.typeName;
  const opts: string[] = [];
  if (f.options?.packed !== undefined) opts.push(`packed = ${f.options.packed}`);
  if (f.options?.deprecated) opts.push("deprecated = true");
  if (isFieldSet(f, FieldDescriptorProtoSchema.field.defaultValue)) {
    opts.push(`default = ${f.type === Type.STRING ? JSON.stringify(f.defaultValue) : f.defaultValue}`);
  }
  const suffix = opts.length ? ` [${opts.join(", ")}]` : "";
  return `${label}${type} ${f.name} = ${f.number}${suffix};`;
}

function mapEntry(f: FieldDescriptorProto, owner: DescriptorProto): string | undefined {
  if (f.label !== Label.REPEATED || f.type !== Type.MESSAGE) return undefined;
  const entry = owner.nestedType.find((n) => n.options?.mapEntry && f.typeName.endsWith(`.${n.name}`));
  if (!entry) return undefined;
  const [k, v] = entry.field;
  return `map<${scalarNames[k.type]}, ${scalarNames[v.type] ?? v.typeName}>`;
}
