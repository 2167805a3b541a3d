/**
 * The `vane` command tree: names, arguments, options, help and examples only. What a command
 * does lives in commands/ and is imported when it runs, so `vane --help` loads no client code.
 */
import { Command, CommanderError, Option } from "commander";
import { EXIT_USAGE } from "./errors.ts";
import { paint } from "./output.ts";

/** What a command module exports: it gets the parsed command and returns an exit code (default 0). */
export type Action = (cmd: Command) => Promise<number | void>;

const program = new Command("vane")
  .description("Drive Vane (feature flags and experiments) from a terminal or CI.")
  .addOption(new Option("-o, --output <format>", "output format").choices(["table", "json", "yaml"]).default("table"))
  .option("--profile <name>", "stored profile to use (default: the current one; env VANE_PROFILE)")
  .option("--project <key>", "project key or id (default: the context's, else the only or default project)")
  .addHelpText(
    "after",
    `
Examples:
  $ vane login --api-key "$(cat .vane/admin-api-key)"
  $ vane flags set new-checkout --env production --on --rollout 25
  $ vane diff -f flags/ && echo "nothing to apply"

Exit codes: 0 ok, 1 error, 2 usage, 3 changes pending (vane diff).
CI: set VANE_URL and VANE_API_KEY (nothing is stored). Docs: docs/cli.md
`,
  )
  .showSuggestionAfterError()
  .exitOverride()
  .configureOutput({ outputError: (str, write) => write(paint("red", str.trimEnd(), process.stderr) + "\n") });

const run = (load: () => Promise<Action>) =>
  async function (this: Command) {
    const code = await (await load())(this);
    if (code) process.exitCode = code;
  };

function command(parent: Command, spec: string, description: string, examples: string[]): Command {
  const cmd = parent.command(spec).description(description);
  if (examples.length) cmd.addHelpText("after", `\nExamples:\n${examples.map((e) => `  $ ${e}`).join("\n")}\n`);
  return cmd;
}

const envOption = () => new Option("-e, --env <key>", "environment key or id (default: the context's)");

// Sign-in and context.
command(program, "login", "Store a profile: server URL and a personal or admin API key, or an OpenID Connect sign-in (checked by signing in)", [
  'vane login --url http://localhost:8080 --api-key "$(cat .vane/admin-api-key)"',
  'echo "$KEY" | vane login --url https://vane.example.com',
  "vane login --url https://vane.example.com --oidc",
])
  .option("--url <url>", "server URL", "http://localhost:8080")
  .option("--api-key <key>", "API key (default: read from stdin)")
  .option("--oidc", "sign in at the server's OpenID Connect provider (device code: confirm in any browser)")
  .option("--name <profile>", "profile name", "default")
  .action(run(async () => (await import("./commands/auth.ts")).login));
command(program, "logout", "Forget the current (or --profile) stored profile", ["vane logout"]).action(
  run(async () => (await import("./commands/auth.ts")).logout),
);
command(program, "whoami", "Who the credential acts as, and the current context", ["vane whoami -o json"]).action(
  run(async () => (await import("./commands/auth.ts")).whoami),
);
const context = command(program, "context", "Show or set the default organization, project and environment", ["vane context use acme/default/development"]);
command(context, "use <org/project/env>", "Set the context of the current profile (any part may be left empty)", [
  "vane context use acme/default/production",
  "vane context use //staging",
]).action(run(async () => (await import("./commands/auth.ts")).contextUse));
command(context, "show", "Print the current context", ["vane context show"]).action(run(async () => (await import("./commands/auth.ts")).whoami));

// Tenancy.
command(program, "orgs", "List organizations you belong to", ["vane orgs"]).action(run(async () => (await import("./commands/tenancy.ts")).orgs));
command(program, "projects", "List the organization's projects", ["vane projects -o json"]).action(
  run(async () => (await import("./commands/tenancy.ts")).projects),
);
command(program, "envs", "List the project's environments", ["vane envs --project default"]).action(
  run(async () => (await import("./commands/tenancy.ts")).envs),
);
command(program, "members", "List the organization's members and roles", ["vane members"]).action(
  run(async () => (await import("./commands/tenancy.ts")).members),
);

const keys = command(program, "keys", "API keys of an environment", ["vane keys list --env production"]);
command(keys, "list", "List the environment's API keys", ["vane keys list --env development"])
  .addOption(envOption())
  .option("--all", "include revoked keys")
  .action(run(async () => (await import("./commands/tenancy.ts")).keysList));
command(keys, "create <name>", "Create a key; its secret is printed once", ["vane keys create backend --env production --kind server"])
  .addOption(envOption())
  .addOption(new Option("--kind <kind>", "key kind").choices(["server", "client", "admin"]).default("server"))
  .action(run(async () => (await import("./commands/tenancy.ts")).keysCreate));
command(keys, "revoke <id>", "Revoke a key (its tokens live until they expire)", ["vane keys revoke 6f1c…"]).action(
  run(async () => (await import("./commands/tenancy.ts")).keysRevoke),
);

// Flags.
const flags = command(program, "flags", "Feature flags of the project", ["vane flags list", "vane flags set new-checkout --env production --on --rollout 25"]);
command(flags, "list", "List flags with their state per environment", ["vane flags list --query checkout", "vane flags list -o json"])
  .option("-q, --query <text>", "filter by key or name")
  .option("--archived", "list archived flags only")
  .action(run(async () => (await import("./commands/flags.ts")).list));
command(flags, "get <flag>", "Show a flag, its variants and its targeting in every environment", ["vane flags get new-checkout -o yaml"]).action(
  run(async () => (await import("./commands/flags.ts")).get),
);
command(flags, "create <flag>", "Create a flag (boolean with variants on/off unless --variant is given)", [
  "vane flags create new-checkout --name 'New checkout'",
  'vane flags create banner --type string --variant blue=\\"blue\\" --variant red=\\"red\\"',
])
  .option("--name <name>", "display name (default: the key)")
  .option("--description <text>", "description", "")
  .addOption(new Option("--type <type>", "value type").choices(["boolean", "string", "number", "object"]).default("boolean"))
  .option("--variant <key=json>", "a variant, repeatable; the value is JSON (strings need quotes)", (v: string, all: string[] = []) => [...all, v])
  .option("--tag <tag>", "a tag, repeatable", (v: string, all: string[] = []) => [...all, v])
  .option("--client-visible", "evaluable with client keys (browsers)")
  .action(run(async () => (await import("./commands/flags.ts")).create));
command(flags, "archive <flag>", "Archive a flag (it stops being served)", ["vane flags archive old-banner --reason 'shipped'"])
  .option("--reason <text>", "why, for the audit log", "")
  .action(run(async () => (await import("./commands/flags.ts")).archive));
command(flags, "set <flag>", "Change a flag's targeting in one environment", [
  "vane flags set new-checkout --env production --on --default off --rollout 25",
  "vane flags set new-checkout --env production --off",
])
  .addOption(envOption())
  .option("--on", "enable the flag")
  .option("--off", "disable the flag (serves its default variant)")
  .option("--default <variant>", "the variant served when no rule matches")
  .option("--rollout <percent>", "serve --variant to this share of units (a final rule), the default to the rest")
  .option("--variant <variant>", "the variant --rollout serves (default: the first variant that is not the default)")
  .option("--reason <text>", "why, for the audit log", "")
  .action(run(async () => (await import("./commands/flags.ts")).set));

const segments = command(program, "segments", "Segments (reusable audiences) of the project", ["vane segments list"]);
command(segments, "list", "List segments and the flags that use them", ["vane segments list -o yaml"]).action(
  run(async () => (await import("./commands/flags.ts")).segmentsList),
);
command(segments, "get <segment>", "Show a segment", ["vane segments get beta-users"]).action(
  run(async () => (await import("./commands/flags.ts")).segmentsGet),
);

command(program, "audit", "The project's audit log, newest first", ["vane audit --flag new-checkout --since 24h", "vane audit --since 2026-01-31 -o json"])
  .option("--flag <key>", "only this flag")
  .addOption(envOption())
  .option("--since <when>", "only entries after this: a duration (30m, 24h, 7d) or a date")
  .option("--limit <n>", "at most this many entries", "50")
  .action(run(async () => (await import("./commands/audit.ts")).audit));
command(program, "revert <entry>", "Undo one audit entry (a flag definition or an environment's targeting)", ["vane revert 42 --reason 'bad rollout'"])
  .option("--reason <text>", "why, for the audit log", "")
  .action(run(async () => (await import("./commands/audit.ts")).revert));

command(program, "eval <flag>", "Evaluate a flag for a context and explain the result (no exposure is recorded)", [
  "vane eval new-checkout --env development --context targetingKey=u1 --context email=ann@example.com",
  "vane eval new-checkout --env production --context-file ctx.json -o json",
])
  .addOption(envOption())
  .option("-c, --context <key=value>", "a context attribute, repeatable; values parse as JSON when they can", (v: string, all: string[] = []) => [...all, v])
  .option("--context-file <file>", "the context as a JSON object")
  .action(run(async () => (await import("./commands/eval.ts")).evaluate));
command(program, "watch", "Stream the project's changes as they happen, reconnecting and resuming when the connection drops (Ctrl-C stops)", [
  "vane watch",
  "vane watch -o json | jq .flagKey",
  "vane watch --since 1042",
])
  .option("--since <sequence>", "first replay the changes after this sequence (a line's `sequence`), as far back as the server holds")
  .action(run(async () => (await import("./commands/watch.ts")).watch));

const importCmd = command(program, "import", "Import flag definitions from another format", ["vane import flagd flags.json --env development"]);
command(importCmd, "flagd <file>", "Import a flagd flag-definition file into an environment", ["vane import flagd flags.json --env development --replace"])
  .addOption(envOption())
  .option("--replace", "disable flags the file does not list (default: merge)")
  .option("--reason <text>", "why, for the audit log", "")
  .action(run(async () => (await import("./commands/flagd.ts")).importFlagd));
const exportCmd = command(program, "export", "Export flag definitions in another format", ["vane export flagd --env production > flags.json"]);
command(exportCmd, "flagd", "Print an environment as a flagd flag-definition file", ["vane export flagd --env production > flags.json"])
  .addOption(envOption())
  .action(run(async () => (await import("./commands/flagd.ts")).exportFlagd));

const experiments = command(program, "experiments", "Experiments of the project", ["vane experiments list", "vane experiments results checkout-test"]);
command(experiments, "list", "List experiments", ["vane experiments list -o json"]).action(run(async () => (await import("./commands/experiments.ts")).list));
command(experiments, "create <key>", "Create an experiment on a flag (a draft until started)", [
  "vane experiments create one-page --flag checkout-flow --env production --variant control --variant treatment --metric purchased",
  "vane experiments create big-test --flag banner --variant off=90 --variant on=10 --metric clicks --guardrail errors --hypothesis 'more clicks'",
  "vane experiments create pricing --flag price --variant a --variant b --metric revenue --engine bayesian --scale absolute --planned-units 5000",
])
  .addOption(envOption())
  .requiredOption("--flag <key>", "the flag whose variants are the arms")
  .option("--variant <variant[=weight]>", "an arm and its traffic weight (default 1), repeatable; at least two", (v: string, all: string[] = []) => [...all, v])
  .option("--control <variant>", "the arm the others are compared with (default: the first)")
  .option("--metric <key>", "a primary metric, repeatable (1 to 5)", (v: string, all: string[] = []) => [...all, v])
  .option("--secondary <key>", "a secondary metric, repeatable", (v: string, all: string[] = []) => [...all, v])
  .option("--guardrail <key>", "a guardrail metric, repeatable", (v: string, all: string[] = []) => [...all, v])
  .option("--name <text>", "a readable name (default: the key)")
  .option("--hypothesis <text>", "what you expect, and why")
  .addOption(new Option("--engine <engine>", "how results decide").choices(["frequentist", "bayesian"]).default("frequentist"))
  .addOption(new Option("--scale <scale>", "the scale of lifts and decisions").choices(["relative", "absolute"]).default("relative"))
  .addOption(new Option("--correction <method>", "across metrics and arms").choices(["benjamini-hochberg", "holm", "none"]).default("benjamini-hochberg"))
  .option("--level <level>", "confidence (or credible) level, 0.5 to 0.999 (default 0.95)")
  .option("--one-sided", "test only for an improvement (guardrails stay two-sided)")
  .option("--sequential", "decide on always-valid numbers, safe to read while running")
  .option("--planned-units <n>", "planned units per arm (results show progress)")
  .action(run(async () => (await import("./commands/experiments.ts")).create));
command(experiments, "start <experiment>", "Start an experiment (key or id)", ["vane experiments start checkout-test"])
  .option("--reason <text>", "why, for the audit log", "")
  .action(run(async () => (await import("./commands/experiments.ts")).start));
command(experiments, "stop <experiment>", "Stop an experiment, optionally shipping a variant", ["vane experiments stop checkout-test --ship treatment"])
  .option("--ship <variant>", "serve this variant to everyone afterwards")
  .option("--reason <text>", "why, for the audit log", "")
  .action(run(async () => (await import("./commands/experiments.ts")).stop));
command(experiments, "results <experiment>", "Results per metric and variant, intervals drawn as bars", [
  "vane experiments results checkout-test --confidence 0.9",
])
  .option("--confidence <level>", "confidence level of the intervals (default: the experiment's own, set with --level at creation)")
  .action(run(async () => (await import("./commands/experiments.ts")).results));
const metrics = command(program, "metrics", "The project's metrics (what experiments measure)", [
  "vane metrics -o yaml",
  "vane metrics create purchased --event purchase --kind conversion",
]);
// `vane metrics` alone lists them, as before `create` existed.
metrics
  .command("list", { isDefault: true })
  .description("List the project's metrics")
  .addHelpText("after", "\nExamples:\n  $ vane metrics list -o yaml\n")
  .action(run(async () => (await import("./commands/experiments.ts")).metrics));
command(metrics, "create <key>", "Create a metric over a tracked event", [
  "vane metrics create purchased --event purchase --kind conversion",
  "vane metrics create latency --event page_load --kind mean --direction decrease --name 'Page load (ms)'",
  "vane metrics create revenue-per-session --event purchase --kind ratio --denominator session_start",
  "vane metrics create load-p90 --event page_load --kind quantile --quantile 0.9 --direction decrease",
  "vane metrics create purchased-24h --event purchase --kind conversion --window 24h",
  "vane metrics create week-2-retention --event session_start --kind retention --retention 7-14",
  "vane metrics create revenue --event purchase --kind sum --cap-quantile 0.99",
])
  .requiredOption("--event <name>", "the tracked event it is computed from")
  .addOption(
    new Option(
      "--kind <kind>",
      "per unit: did it (conversion), how often (count), the values' sum or mean; a ratio of two events; a quantile of the values; retention",
    )
      .choices(["conversion", "count", "sum", "mean", "ratio", "quantile", "retention"])
      .makeOptionMandatory(),
  )
  .option("--denominator <event>", "ratio: the event whose per-unit total is the denominator")
  .addOption(new Option("--numerator-aggregation <how>", "ratio: total the numerator event by count or sum (default sum)").choices(["count", "sum"]))
  .addOption(new Option("--denominator-aggregation <how>", "ratio: total the denominator event by count or sum (default count)").choices(["count", "sum"]))
  .option("--quantile <q>", "quantile: which one, between 0 and 1 (0.9 for p90)")
  .option("--window <duration>", "count only events this long after the unit's first exposure (30m, 24h, 7d)")
  .option("--retention <days>", "retention: START-END days after first exposure (7-14: returned in the second week)")
  .option("--cap <value>", "lower per-unit totals above this value to it")
  .option("--cap-quantile <q>", "lower per-unit totals above this quantile of the experiment's units (0.99)")
  .addOption(new Option("--direction <direction>", "which way is better").choices(["increase", "decrease"]).default("increase"))
  .option("--name <text>", "a readable name (default: the key)")
  .action(run(async () => (await import("./commands/experiments.ts")).createMetric));

// Flags as code.
const fileOption = () => new Option("-f, --file <path>", "a YAML/JSON file or a directory of them").makeOptionMandatory();
command(program, "apply", "Make the project match the files: create and update (and with --prune archive) flags and segments", [
  "vane apply -f flags/",
  "vane apply -f flags.yaml --dry-run",
  "vane apply -f flags/ --prune --reason 'release 42'",
  "vane apply -f flags.yaml --confirm",
])
  .addOption(fileOption())
  .option("--prune", "archive flags (and delete segments) the files do not list")
  .option("--dry-run", "print what would change, change nothing")
  .option("--confirm", "print what would change and ask (on stdin) before changing it")
  .option("--reason <text>", "why, for the audit log", "vane apply")
  .action(run(async () => (await import("./commands/apply.ts")).apply));
command(program, "diff", "Show what apply would change; exit 0 when nothing, 3 when changes are pending", [
  "vane diff -f flags/",
  "vane diff -f flags.yaml -o json",
])
  .addOption(fileOption())
  .option("--prune", "also show what --prune would archive or delete")
  .action(run(async () => (await import("./commands/apply.ts")).diff));
command(program, "pull", "Write the project's flags, segments and targeting as a file to start flags as code from", [
  "vane pull > flags.yaml",
  "vane pull -f flags.yaml",
  "vane pull -o json > flags.json",
])
  .option("-f, --file <path>", "write to this file instead of stdout")
  .action(run(async () => (await import("./commands/apply.ts")).pull));

command(program, "completion <shell>", "Print a shell completion script (bash, zsh or fish)", [
  "source <(vane completion bash)",
  'vane completion zsh > "${fpath[1]}/_vane"',
  "vane completion fish > ~/.config/fish/completions/vane.fish",
]).action(
  run(async () => async (cmd) => {
    const { completionScript } = await import("./completion.ts");
    process.stdout.write(completionScript(program, cmd.args[0]));
  }),
);

try {
  await program.parseAsync(process.argv);
} catch (err) {
  if (err instanceof CommanderError) {
    // Help and version are successes; everything else commander rejects is a usage error.
    process.exitCode = err.code === "commander.helpDisplayed" || err.code === "commander.version" ? 0 : EXIT_USAGE;
  } else {
    const { describeError } = await import("./describe.ts");
    const { line, exitCode } = describeError(err);
    process.stderr.write(`${paint("red", "error:", process.stderr)} ${line}\n`);
    process.exitCode = exitCode;
  }
}
