/**
 * Writes the contract's third-party imports into `<root>/proto-deps/` from descriptors that
 * npm packages ship, so buf works offline and no third-party source is committed.
 */
import { mkdirSync, writeFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { file_buf_validate_validate } from "@bufbuild/protovalidate/gen/buf/validate/validate_pb.js";
import { printProto } from "./print-proto.ts";

/** Prints every dependency into `<root>/proto-deps` and returns the files written. */
export function writeProtoDeps(root: string): string[] {
  const files = [file_buf_validate_validate];
  return files.map((f) => {
    const path = join(root, "proto-deps", f.proto.name);
    mkdirSync(dirname(path), { recursive: true });
    writeFileSync(path, printProto(f.proto));
    return path;
  });
}
