/**
 * Shell completion scripts for bash, zsh and fish, generated from the command tree itself, so
 * they always list the commands and options that exist. Commander has no completion of its own.
 */
import type { Command } from "commander";
import { UsageError } from "./errors.ts";

interface Node {
  path: string[];
  subcommands: string[];
  options: string[];
}

function walk(cmd: Command, path: string[] = []): Node[] {
  const options = [...cmd.options.flatMap((o) => [o.short, o.long].filter((x): x is string => Boolean(x))), "--help"];
  const here: Node = { path, subcommands: cmd.commands.map((c) => c.name()), options };
  return [here, ...cmd.commands.flatMap((c) => walk(c, [...path, c.name()]))];
}

function bash(nodes: Node[]): string {
  const cases = nodes.map((n) => `    "${n.path.join(" ")}") words="${[...n.subcommands, ...n.options].join(" ")}" ;;`).join("\n");
  return `# vane completion for bash: source <(vane completion bash)
_vane() {
  local cur path="" w words
  cur="\${COMP_WORDS[COMP_CWORD]}"
  for w in "\${COMP_WORDS[@]:1:COMP_CWORD-1}"; do
    [[ $w == -* ]] && continue
    case " $(_vane_words "$path") " in *" $w "*) path="\${path:+$path }$w" ;; esac
  done
  COMPREPLY=($(compgen -W "$(_vane_words "$path")" -- "$cur"))
}
_vane_words() {
  case "$1" in
${cases}
    *) words="" ;;
  esac
  echo "$words"
}
complete -o default -F _vane vane
`;
}

function zsh(nodes: Node[]): string {
  return `#compdef vane
# vane completion for zsh: vane completion zsh > "\${fpath[1]}/_vane" (zsh runs the bash one)
autoload -U +X bashcompinit && bashcompinit
${bash(nodes).replace(/^# .*\n/, "")}`;
}

function fish(nodes: Node[]): string {
  const lines = ["# vane completion for fish: vane completion fish > ~/.config/fish/completions/vane.fish", "complete -c vane -f"];
  for (const n of nodes) {
    const cond = n.path.length ? `__fish_seen_subcommand_from ${n.path[n.path.length - 1]}` : "__fish_use_subcommand";
    for (const s of n.subcommands) lines.push(`complete -c vane -n '${cond}' -a ${s}`);
    for (const o of n.options)
      lines.push(o.startsWith("--") ? `complete -c vane -n '${cond}' -l ${o.slice(2)}` : `complete -c vane -n '${cond}' -s ${o.slice(1)}`);
  }
  return `${lines.join("\n")}\n`;
}

export function completionScript(program: Command, shell: string): string {
  const nodes = walk(program);
  if (shell === "bash") return bash(nodes);
  if (shell === "zsh") return zsh(nodes);
  if (shell === "fish") return fish(nodes);
  throw new UsageError(`completion: shell must be bash, zsh or fish, got "${shell}"`);
}
