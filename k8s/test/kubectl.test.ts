import { execFileSync } from "node:child_process";
import { describe, expect, it } from "vitest";
import { findKubectl, kubectlPackage, zipEntry } from "../src/kubectl.ts";
import { k8sPath, kustomize } from "../src/render.ts";

describe("kubectl on a machine without one", () => {
  it("comes out of the pinned npm package and renders every overlay exactly as the installed kubectl", () => {
    const binary = findKubectl({ env: { PATH: "" } });
    expect(binary).toContain(`vane-kubectl/${kubectlPackage.version}/kubectl`);
    expect(execFileSync(binary, ["version", "--client"], { encoding: "utf8" })).toContain(kubectlPackage.version);
    for (const overlay of ["overlays/dev", "overlays/prod"]) {
      expect(execFileSync(binary, ["kustomize", k8sPath(overlay)], { encoding: "utf8", maxBuffer: 64 << 20 })).toBe(kustomize(overlay));
    }
  }, 180_000);

  it("prefers $KUBECTL, then the PATH", () => {
    expect(findKubectl({ env: { KUBECTL: "/opt/k/kubectl", PATH: "/usr/bin" } })).toBe("/opt/k/kubectl");
    const onPath = execFileSync("sh", ["-c", "command -v kubectl || true"], { encoding: "utf8" }).trim();
    if (onPath) expect(findKubectl({ env: { PATH: onPath.replace(/\/kubectl$/, "") } })).toBe(onPath);
  });

  it("says how to install kubectl where the packaged one cannot run", () => {
    expect(() => findKubectl({ env: { PATH: "" }, platform: "darwin", arch: "arm64" })).toThrow(/apt-get install kubectl/);
  });

  it("reads zip entries and rejects what is not a zip", () => {
    expect(() => zipEntry(Buffer.from("not a zip"), "x")).toThrow(/not a zip/);
  });
});
