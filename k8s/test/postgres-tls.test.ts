import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { parse, toClientConfig } from "pg-connection-string";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { checkWorkload, podTemplate } from "../src/policy.ts";
import { overlays, render, type K8sObject } from "../src/render.ts";

const rendered = new Map<string, K8sObject[]>();
beforeAll(() => {
  for (const overlay of overlays) rendered.set(overlay, render(overlay));
});
const dir = mkdtempSync(join(tmpdir(), "vane-pg-ca-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

/** Every rendered container that connects to Postgres, with its URL. */
function databaseUrls(objects: K8sObject[]): { object: K8sObject; url: string }[] {
  const out: { object: K8sObject; url: string }[] = [];
  for (const object of objects) {
    for (const c of podTemplate(object)?.spec?.containers ?? []) {
      const url = c.env?.find((e) => e.name === "VANE_DATABASE_URL")?.value;
      if (url) out.push({ object, url });
    }
  }
  return out;
}

describe("Postgres connections verify CloudNativePG's certificate", () => {
  it("identity, flags, analytics and the three migration Jobs all connect with TLS", () => {
    const names = overlays.flatMap((o) => databaseUrls(rendered.get(o) ?? []).map((d) => `${d.object.kind}/${d.object.metadata.name}`));
    expect(new Set(names)).toEqual(
      new Set(["Deployment/identity", "Deployment/flags", "Deployment/analytics", "Job/migrate-identity", "Job/migrate-flags", "Job/migrate-analytics"]),
    );
  });

  it("as node-postgres reads the URLs: the mounted CA, the server's name checked", () => {
    writeFileSync(join(dir, "ca.crt"), "-----BEGIN CERTIFICATE-----\nstand-in\n-----END CERTIFICATE-----\n");
    for (const overlay of overlays) {
      for (const { url } of databaseUrls(rendered.get(overlay) ?? [])) {
        const local = url.replace(/\$\((\w+)\)/g, "$1").replace(/sslrootcert=[^&]+/, `sslrootcert=${join(dir, "ca.crt")}`);
        const ssl = toClientConfig(parse(local)).ssl;
        expect(typeof ssl).toBe("object");
        const opts = ssl as { ca?: string; rejectUnauthorized?: boolean; checkServerIdentity?: unknown };
        expect(opts.ca).toContain("stand-in");
        expect(opts.rejectUnauthorized).not.toBe(false);
        expect(opts.checkServerIdentity).toBeUndefined();
      }
    }
  });

  it("the policy rejects sslmode=require, a missing sslrootcert and a CA from the wrong Secret", () => {
    const flags = (rendered.get("overlays/prod") ?? []).find((o) => o.kind === "Deployment" && o.metadata.name === "flags") as any;
    expect(checkWorkload(flags)).toEqual([]);
    const rules = (fn: (d: any) => void) => {
      const d = structuredClone(flags);
      fn(d);
      return checkWorkload(d).map((v) => v.rule);
    };
    const env = (d: any) => d.spec.template.spec.containers[0].env.find((e: any) => e.name === "VANE_DATABASE_URL");
    expect(
      rules((d) => {
        env(d).value = env(d).value.replace(/\?.*/, "?sslmode=require");
      }),
    ).toContain("postgres-tls");
    expect(
      rules((d) => {
        env(d).value = env(d).value.replace(/&sslrootcert=[^&]+/, "");
      }),
    ).toContain("postgres-tls");
    expect(
      rules((d) => {
        d.spec.template.spec.volumes.find((v: any) => v.name === "postgres-ca").secret.secretName = "other";
      }),
    ).toContain("postgres-tls");
  });
});
