/** The `vane` binary without a server: help, usage errors, completion, file validation, profiles. */
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { spawnSync } from "node:child_process";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { bin, createCli, type Cli } from "./run-vane.ts";

let cli: Cli;
let dir: string;
beforeAll(async () => {
  cli = await createCli();
  dir = await mkdtemp(join(tmpdir(), "vane-files-"));
});
afterAll(async () => {
  await cli?.cleanup();
  await rm(dir, { recursive: true, force: true });
});

describe("vane without a server", () => {
  it("prints help with an example on every command, exit 0", async () => {
    // Walk the tree as a person would: each help lists the commands below it.
    const commandsIn = (help: string) =>
      [...(help.split("\nCommands:\n")[1] ?? "").matchAll(/^ {2}([a-z][a-z-]*)/gm)].map((m) => m[1]).filter((name) => name !== "help");
    const seen: string[] = [];
    const visit = async (path: string[]): Promise<void> => {
      const res = await cli.run([...path, "--help"]);
      expect(res.code, path.join(" ")).toBe(0);
      expect(res.stdout, path.join(" ") || "vane").toMatch(/Examples:\n {2}\$ .*vane /);
      seen.push(path.join(" "));
      for (const sub of commandsIn(res.stdout)) await visit([...path, sub]);
    };
    await visit([]);
    expect(seen).toEqual(
      expect.arrayContaining(["flags set", "keys create", "experiments results", "import flagd", "context use", "apply", "diff", "pull", "completion"]),
    );
    expect(seen.length).toBeGreaterThan(35);
  });

  it("exits 2 on usage errors, with one line and no stack", async () => {
    const unknown = await cli.run(["flgs"]);
    expect(unknown.code).toBe(2);
    expect(unknown.stderr).toContain("unknown command 'flgs'");
    const missing = await cli.run(["diff"]);
    expect(missing.code).toBe(2);
    expect(missing.stderr).toContain("required option '-f, --file <path>' not specified");
    const badOutput = await cli.run(["-o", "xml", "flags", "list"]);
    expect(badOutput.code).toBe(2);
    expect(badOutput.stderr).not.toMatch(/\n\s+at /);
  });

  it("says how to log in when there is no profile", async () => {
    const res = await cli.run(["flags", "list"]);
    expect(res.code).toBe(1);
    expect(res.stderr.trim()).toBe("error: not logged in: run vane login, or set VANE_URL and VANE_API_KEY");
  });

  it("colours only on a terminal, and not with NO_COLOR", () => {
    // util-linux's script(1) gives the command a pseudo-terminal; -e passes its exit code on.
    // The inherited environment is not trusted: CI runs with CI=true (node's styleText then
    // counts colours off), and may set TERM=dumb, NO_COLOR or FORCE_COLOR.
    const { NO_COLOR: _no, CI: _ci, FORCE_COLOR: _force, NODE_DISABLE_COLORS: _disable, ...inherited } = process.env;
    const onTerminal = (env: Record<string, string>) =>
      spawnSync("script", ["-qec", `${process.execPath} ${bin} flgs`, "/dev/null"], {
        env: { ...inherited, TERM: "xterm-256color", ...env },
        encoding: "utf8",
      });
    const plain = onTerminal({});
    expect(plain.status).toBe(2);
    expect(plain.stdout).toContain("\u001b[31merror: unknown command 'flgs'");
    const noColour = onTerminal({ NO_COLOR: "1" });
    expect(noColour.stdout).toContain("error: unknown command 'flgs'");
    expect(noColour.stdout).not.toContain("\u001b[");
  });

  it("prints completion scripts for bash, zsh and fish listing the commands", async () => {
    for (const shell of ["bash", "zsh", "fish"]) {
      const res = await cli.run(["completion", shell]);
      expect(res.code, shell).toBe(0);
      expect(res.stdout, shell).toContain("apply");
      expect(res.stdout, shell).toContain("rollout");
    }
    expect((await cli.run(["completion", "bash"])).stdout).toContain("complete -o default -F _vane vane");
    expect((await cli.run(["completion", "fish"])).stdout).toContain("complete -c vane -n '__fish_seen_subcommand_from set' -l rollout");
    expect((await cli.run(["completion", "tcsh"])).code).toBe(2);

    // The bash script completes commands, subcommands and the options of the command typed.
    const complete = (words: string[]) =>
      spawnSync(
        "bash",
        [
          "-c",
          `source <(${process.execPath} ${bin} completion bash); COMP_WORDS=(${words.join(" ")}); COMP_CWORD=${words.length - 1}; _vane; echo "\${COMPREPLY[*]}"`,
        ],
        {
          encoding: "utf8",
        },
      ).stdout.trim();
    expect(complete(["vane", "fl"])).toBe("flags");
    expect(complete(["vane", "flags", "s"])).toBe("set");
    expect(complete(["vane", "flags", "set", "my-flag", "--r"])).toBe("--rollout --reason");
  });

  it("names file, line and field for a file that breaks the schema, before reaching any server", async () => {
    const file = join(dir, "bad.yaml");
    await writeFile(
      file,
      [
        "flags:",
        "  checkout:",
        "    type: boolean",
        "    variants:",
        "      on: true",
        "    environments:",
        "      production:",
        "        enabled: yes-please",
        "",
      ].join("\n"),
    );
    const res = await cli.run(["diff", "-f", file]);
    expect(res.code).toBe(1);
    expect(res.stderr.trim()).toBe(`error: ${file}:8: flags.checkout.environments.production.enabled: must be boolean`);

    await writeFile(file, "flags:\n  checkout:\n    type: boolean\n    variants: {on: true}\n    colour: blue\n");
    expect((await cli.run(["diff", "-f", file])).stderr.trim()).toBe(`error: ${file}:5: flags.checkout.colour: unknown field`);

    await writeFile(file, "flags:\n  checkout:\n    type: boolean\n  checkout:\n");
    expect((await cli.run(["diff", "-f", file])).stderr).toContain(`${file}:4: Map keys must be unique`);
  });

  it("keeps VANE_API_KEY without VANE_URL from silently using a stored profile", async () => {
    const res = await cli.run(["whoami"], { env: { VANE_API_KEY: "vane_personal_x" } });
    expect(res.code).toBe(1);
    expect(res.stderr).toContain("VANE_API_KEY is set but VANE_URL is not");
  });
});
