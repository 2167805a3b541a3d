/**
 * `npm run gen`: prints proto-deps/, formats proto/, lints, and regenerates gen/.
 */
import { execFileSync } from "node:child_process";
import { fileURLToPath } from "node:url";
import { writeProtoDeps } from "./proto-deps.ts";

const root = fileURLToPath(new URL("..", import.meta.url));
const buf = (...args: string[]) => execFileSync("npx", ["--no-install", "buf", ...args], { cwd: root, stdio: "inherit" });

writeProtoDeps(root);
buf("format", "-w", "proto");
buf("lint");
buf("generate", "--exclude-path", "proto-deps/buf");
console.log("gen/ is up to date with proto/");
