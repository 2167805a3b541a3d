/**
 * Output for people (aligned tables, colour only on a TTY without NO_COLOR) and for scripts
 * (`-o json|yaml`: the plain objects each command documents, in a stable shape).
 */
import { styleText } from "node:util";
import { UsageError } from "./errors.ts";

export type Format = "table" | "json" | "yaml";

export function parseFormat(value: string | undefined): Format {
  if (value === undefined || value === "table" || value === "json" || value === "yaml") return value ?? "table";
  throw new UsageError(`-o must be table, json or yaml, got "${value}"`);
}

/** Whether stdout gets colour: a terminal, and NO_COLOR unset or empty (https://no-color.org). */
export function colourEnabled(stream: NodeJS.WriteStream = process.stdout): boolean {
  return Boolean(stream.isTTY) && !process.env.NO_COLOR && process.env.TERM !== "dumb";
}

type Style = Parameters<typeof styleText>[0];
export function paint(style: Style, text: string, stream: NodeJS.WriteStream = process.stdout): string {
  return colourEnabled(stream) ? styleText(style, text) : text;
}

/** Writes `data` as JSON or YAML (scripts), or calls `human` to print it for people. */
export async function emit(format: Format, data: unknown, human: () => unknown): Promise<void> {
  if (format === "json") process.stdout.write(`${JSON.stringify(data, null, 2)}\n`);
  else if (format === "yaml") {
    const { stringify } = await import("yaml");
    process.stdout.write(stringify(data));
  } else await human();
}

/** An aligned table without borders, like kubectl's; the header dim on a terminal. */
export async function printTable(head: string[], rows: (string | number | boolean)[][]): Promise<void> {
  if (rows.length === 0) {
    process.stdout.write(`${paint("dim", "(none)")}\n`);
    return;
  }
  const { default: Table } = await import("cli-table3");
  const table = new Table({
    head: head.map((h) => paint("bold", h.toUpperCase())),
    chars: {
      top: "",
      "top-mid": "",
      "top-left": "",
      "top-right": "",
      bottom: "",
      "bottom-mid": "",
      "bottom-left": "",
      "bottom-right": "",
      left: "",
      "left-mid": "",
      mid: "",
      "mid-mid": "",
      right: "",
      "right-mid": "",
      middle: "  ",
    },
    style: { head: [], border: [], "padding-left": 0, "padding-right": 0 },
  });
  for (const row of rows) table.push(row.map(String));
  process.stdout.write(`${table.toString().replace(/ +$/gm, "")}\n`);
}

/** Key/value lines for one object. */
export function printFields(fields: [string, unknown][]): void {
  const width = Math.max(...fields.map(([k]) => k.length));
  for (const [k, v] of fields) process.stdout.write(`${paint("bold", `${k}:`.padEnd(width + 1))} ${v === undefined || v === "" ? "-" : String(v)}\n`);
}

/** Progress for long operations, on stderr and only on a terminal, so pipes stay clean. */
export function progress(message: string): void {
  if (process.stderr.isTTY) process.stderr.write(`${paint("dim", message, process.stderr)}\n`);
}
