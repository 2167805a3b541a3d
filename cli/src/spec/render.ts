/** A plan for people: one header per change and a line diff of its YAML, like `git diff`. */
import { structuredPatch } from "diff";
import { stringify } from "yaml";
import { paint } from "../output.ts";
import type { Change } from "./plan.ts";

const SIGN = { create: "+", update: "~", unarchive: "~", archive: "-", delete: "-" } as const;
const COLOUR = { create: "green", update: "yellow", unarchive: "yellow", archive: "red", delete: "red" } as const;

export function describe(c: Change): string {
  const what = c.kind === "targeting" ? `targeting of flag ${c.key} in ${c.environment}` : `${c.kind} ${c.key}`;
  return `${c.action} ${what}`;
}

const yaml = (v: unknown) => (v === null || v === undefined ? "" : stringify(v));

export function renderChanges(changes: Change[]): string {
  const out: string[] = [];
  for (const c of changes) {
    out.push(paint(["bold", COLOUR[c.action]], `${SIGN[c.action]} ${describe(c)}`));
    if (c.before === null && c.after === null) continue;
    const patch = structuredPatch("server", "files", yaml(c.before), yaml(c.after), "", "", { context: 3 });
    for (const hunk of patch.hunks)
      for (const line of hunk.lines) {
        const colour = line[0] === "+" ? "green" : line[0] === "-" ? "red" : "dim";
        out.push(`    ${paint(colour, line)}`);
      }
  }
  return out.length ? `${out.join("\n")}\n` : "";
}
