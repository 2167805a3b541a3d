/**
 * The real `vane` binary against the test suite's own `npm start`: login with the printed key,
 * the main commands' happy paths and failures, JSON output parsed, and flags as code end to end.
 */
import { mkdtemp, readFile, rm, stat, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startPgProxy } from "#test/chaos/pg-proxy.ts";
import { adminSession, startVane, type VaneProcess } from "#test/vane-process.ts";
import { createCli, type Cli } from "./run-vane.ts";

let server: VaneProcess;
let cli: Cli;
let started: { baseUrl: string; adminKey: string; organizationId: string };
let dir: string;

beforeAll(async () => {
  server = startVane();
  cli = await createCli();
  dir = await mkdtemp(join(tmpdir(), "vane-flags-"));
  started = await server.started(45_000);
  const login = await cli.run(["login", "--url", started.baseUrl], { input: `${started.adminKey}\n` });
  expect(login.stderr).toContain('profile "default" saved');
  expect(login.code).toBe(0);
});
afterAll(async () => {
  await server?.cleanup();
  await cli?.cleanup();
  if (dir) await rm(dir, { recursive: true, force: true });
});

const json = async <T = any>(args: string[], env?: Record<string, string>): Promise<T> => {
  const res = await cli.run([...args, "-o", "json"], { env });
  expect(res.code, `vane ${args.join(" ")}: ${res.stderr}`).toBe(0);
  return JSON.parse(res.stdout) as T;
};

describe("vane against npm start", () => {
  it("stores the profile 0600 and signs in with it; VANE_URL/VANE_API_KEY work with nothing stored", async () => {
    const info = await stat(join(cli.configHome, "vane", "config"));
    expect(info.mode & 0o777).toBe(0o600);
    expect(await json(["whoami"])).toMatchObject({
      url: started.baseUrl,
      role: "owner",
      keyKind: "personal",
      organizationId: started.organizationId,
      project: "default",
    });

    const ci = await createCli();
    try {
      const me = await ci.run(["whoami", "-o", "json"], { env: { VANE_URL: started.baseUrl, VANE_API_KEY: started.adminKey } });
      expect(me.code, me.stderr).toBe(0);
      expect(JSON.parse(me.stdout).organizationId).toBe(started.organizationId);
      await expect(stat(join(ci.configHome, "vane"))).rejects.toThrow();
    } finally {
      await ci.cleanup();
    }

    const bad = await cli.run(["login", "--url", started.baseUrl, "--api-key", `vane_personal_${"A".repeat(43)}`, "--name", "bad"]);
    expect(bad.code).toBe(1);
    expect(bad.stderr).toMatch(/^error: server: unauthenticated: /);
  });

  it("context use sets the defaults and checks them; logout forgets the profile", async () => {
    const own = await createCli();
    try {
      expect((await own.run(["login", "--url", started.baseUrl, "--api-key", started.adminKey, "--name", "work"])).code).toBe(0);
      const used = await own.run(["context", "use", "default/default/staging"]);
      expect(used.code, used.stderr).toBe(0);
      expect(JSON.parse((await own.run(["whoami", "-o", "json"])).stdout)).toMatchObject({ project: "default", environment: "staging" });
      const keys = await own.run(["keys", "list", "-o", "json"]); // no --env: the context's
      expect(keys.code, keys.stderr).toBe(0);
      const bad = await own.run(["context", "use", "default/default/qa"]);
      expect(bad.code).toBe(1);
      expect(bad.stderr.trim()).toBe('error: no environment "qa" in project default (have: development, production, staging)');
      expect((await own.run(["context", "use", "default/staging"])).code).toBe(2);
      expect(JSON.parse((await own.run(["whoami", "-o", "json"])).stdout).environment).toBe("staging"); // the bad ones were not stored
      const otherOrg = await own.run(["context", "use", "acme//"]);
      expect(otherOrg.stderr.trim()).toBe('error: no organization "acme" among yours (default)');

      expect((await own.run(["logout"])).code).toBe(0);
      const after = await own.run(["whoami"]);
      expect(after.code).toBe(1);
      expect(after.stderr).toContain("not logged in");
      expect(JSON.parse(await readFile(join(own.configHome, "vane", "config"), "utf8")).profiles).toEqual({});
    } finally {
      await own.cleanup();
    }
  });

  it("lists tenancy and manages keys (the secret printed once)", async () => {
    expect((await json<{ key: string }[]>(["projects"])).map((p) => p.key)).toEqual(["default"]);
    expect((await json<{ key: string; protected: boolean }[]>(["envs"])).map((e) => [e.key, e.protected]).sort()).toEqual([
      ["development", false],
      ["production", true],
      ["staging", false],
    ]);
    expect((await json<{ email: string; role: string }[]>(["members"]))[0].role).toBe("owner");
    expect((await json<{ id: string }[]>(["orgs"]))[0].id).toBe(started.organizationId);

    const created = await json<{ id: string; secret: string; kind: string }>(["keys", "create", "backend", "--env", "staging", "--kind", "server"]);
    expect(created.secret).toMatch(/^vane_server_/);
    const listed = await json<{ id: string; name: string }[]>(["keys", "list", "--env", "staging"]);
    expect(listed.find((k) => k.id === created.id)).toMatchObject({ name: "backend" });
    expect(JSON.stringify(listed)).not.toContain(created.secret);
    expect((await json<{ revokeTime: string | null }>(["keys", "revoke", created.id])).revokeTime).not.toBeNull();

    const noEnv = await cli.run(["keys", "list", "--env", "nowhere"]);
    expect(noEnv.code).toBe(1);
    expect(noEnv.stderr.trim()).toBe('error: no environment "nowhere" in project default (have: development, production, staging)');
  });

  it("creates, sets, lists, evaluates with the matched rule, audits and reverts a flag", async () => {
    expect(await json(["flags", "create", "new-checkout", "--name", "New checkout"])).toMatchObject({ key: "new-checkout", type: "boolean" });
    const set = await json(["flags", "set", "new-checkout", "--env", "development", "--on", "--default", "off", "--rollout", "100"]);
    expect(set).toMatchObject({ enabled: true, default: "off", rules: 1 });
    const listed = await json<{ key: string; environments: Record<string, { enabled: boolean; rules: number }> }[]>(["flags", "list"]);
    expect(listed.find((f) => f.key === "new-checkout")!.environments.development).toEqual({ enabled: true, default: "off", rules: 1 });

    const evaluated = await json(["eval", "new-checkout", "--env", "development", "--context", "targetingKey=u1", "-c", 'plan="pro"']);
    expect(evaluated).toMatchObject({
      value: true,
      variant: "on",
      reason: "targeting_match",
      matchedRule: { index: 0, description: "vane flags set --rollout" },
    });
    const ctx = join(dir, "ctx.json");
    await writeFile(ctx, JSON.stringify({ targetingKey: "u2" }));
    expect(await json(["eval", "new-checkout", "--env", "production", "--context-file", ctx])).toMatchObject({
      value: null,
      reason: "disabled",
      matchedRule: null,
    });

    const table = await cli.run(["flags", "list"]);
    expect(table.stdout).toMatch(/^KEY +TYPE +DEVELOPMENT +PRODUCTION +STAGING$/m);
    expect(table.stdout).toMatch(/^new-checkout +boolean +on \+1 +off +off$/m);
    expect(table.stdout).not.toContain("\u001b["); // not a terminal: no colour

    const wrongVariant = await cli.run(["flags", "set", "new-checkout", "--env", "development", "--default", "purple"]);
    expect(wrongVariant.code).toBe(1);
    expect(wrongVariant.stderr.trim()).toBe('error: --default: flag new-checkout has no variant "purple" (it has on, off)');
    const missing = await cli.run(["flags", "get", "nope"]);
    expect(missing.code).toBe(1);
    expect(missing.stderr.trim()).toBe('error: server: not_found: flag "nope" not found');

    const entries = await json<{ id: number; action: string; environment: string | null }[]>(["audit", "--flag", "new-checkout", "--since", "1h"]);
    expect(entries.map((e) => e.action)).toEqual(["flag.environment.update", "flag.create"]);
    const reverted = await json<{ auditEntryId: number }>(["revert", String(entries[0].id), "--reason", "test"]);
    expect(reverted.auditEntryId).toBeGreaterThan(entries[0].id);
    const after = await json<{ environments?: Record<string, unknown> }>(["flags", "get", "new-checkout"]);
    expect(after.environments?.development).toMatchObject({ enabled: false });
    expect((await cli.run(["audit", "--since", "yesterday-ish"])).code).toBe(2);
    await json(["flags", "create", "to-archive"]);
    expect(await json(["flags", "archive", "to-archive", "--reason", "done"])).toMatchObject({ key: "to-archive", archived: true });
    expect((await json<{ key: string }[]>(["flags", "list", "--archived"])).map((f) => f.key)).toEqual(["to-archive"]);
    const noEntry = await cli.run(["revert", "999999"]);
    expect(noEntry.code).toBe(1);
    expect(noEntry.stderr.trim()).toBe("error: no audit entry 999999 in project default (see vane audit)");
  });

  it("exports and imports flagd files", async () => {
    const file = join(dir, "flagd.json");
    await writeFile(file, JSON.stringify({ flags: { "dark-mode": { state: "ENABLED", variants: { on: true, off: false }, defaultVariant: "on" } } }));
    expect(await json(["import", "flagd", file, "--env", "staging"])).toMatchObject({ created: ["dark-mode"] });
    const exported = await cli.run(["export", "flagd", "--env", "staging"]);
    expect(exported.code).toBe(0);
    expect(JSON.parse(exported.stdout).flags["dark-mode"]).toMatchObject({ state: "ENABLED", defaultVariant: "on" });
    await writeFile(file, "{ not json");
    const bad = await cli.run(["import", "flagd", file, "--env", "staging"]);
    expect(bad.code).toBe(1);
    expect(bad.stderr).toContain(`${file}: not JSON`);
  });

  it("streams changes with watch", async () => {
    const watching = cli.start(["watch", "-o", "json"]);
    try {
      await watching.waitFor(/Watching project default/);
      await json(["flags", "create", "watched-flag"]);
      await watching.waitFor(/"flagKey":"watched-flag"/);
      const line = watching
        .output()
        .stdout.split("\n")
        .find((l) => l.includes("watched-flag"))!;
      expect(JSON.parse(line)).toMatchObject({ kind: "flag_created", flagKey: "watched-flag" });
    } finally {
      watching.child.kill("SIGINT");
      await watching.exited;
    }
  });

  it("keeps watching through a dropped connection, resuming after the last change it saw", async () => {
    const proxy = await startPgProxy(started.baseUrl);
    const watching = cli.start(["watch", "-o", "json"], { env: { VANE_URL: `http://127.0.0.1:${proxy.port}`, VANE_API_KEY: started.adminKey } });
    try {
      await watching.waitFor(/Watching project default/);
      await json(["flags", "create", "before-cut"]);
      await watching.waitFor(/"flagKey":"before-cut"/);
      // The network drops every connection and refuses new ones; a change happens meanwhile.
      proxy.setMode("refuse");
      await watching.waitFor(/connection lost/);
      await json(["flags", "create", "during-cut"]);
      proxy.setMode("pass");
      await watching.waitFor(/"flagKey":"during-cut"/, 40_000);
      const { stdout, stderr } = watching.output();
      expect(stderr).toMatch(/resuming after sequence \d+/);
      expect(stderr).toContain("reconnected");
      // Each change once, in order.
      const keys = stdout
        .split("\n")
        .filter(Boolean)
        .map((l) => (JSON.parse(l) as { flagKey: string }).flagKey);
      expect(keys.filter((k) => k === "before-cut" || k === "during-cut")).toEqual(["before-cut", "during-cut"]);
    } finally {
      watching.child.kill("SIGINT");
      await watching.exited;
      await proxy.close();
    }
  }, 60_000);

  it("creates metrics and experiments, lists, starts, shows results of and stops an experiment", async () => {
    expect(await json(["experiments", "list"])).toEqual([]);
    const missing = await cli.run(["experiments", "results", "nope"]);
    expect(missing.code).toBe(1);
    expect(missing.stderr.trim()).toBe('error: no experiment "nope" in this project (have: none)');

    await json(["flags", "create", "checkout-flow", "--type", "string", "--variant", 'control="a"', "--variant", 'treatment="b"']);
    expect(await json(["metrics", "create", "purchased", "--event", "purchase", "--kind", "conversion", "--name", "Purchased"])).toEqual({
      key: "purchased",
      name: "Purchased",
      event: "purchase",
      kind: "conversion",
      direction: "increase",
    });
    const badKind = await cli.run(["metrics", "create", "x", "--event", "e", "--kind", "median"]);
    expect(badKind.code).toBe(2);
    expect(badKind.stderr).toContain("Allowed choices are conversion, count, sum, mean, ratio, quantile, retention");
    const ratio = ["metrics", "create", "rev-per-session", "--event", "purchase", "--kind", "ratio", "--window", "24h", "--cap-quantile", "0.99"];
    const noDenominator = await cli.run(ratio);
    expect(noDenominator.code).toBe(1);
    expect(noDenominator.stderr).toContain("denominator_event_name is required for a ratio metric");
    const revPerSession = { key: "rev-per-session", event: "purchase", kind: "ratio", denominator: "session", windowSeconds: 86_400, capQuantile: 0.99 };
    expect(await json([...ratio, "--denominator", "session"])).toMatchObject(revPerSession);
    expect((await cli.run(["metrics", "create", "w", "--event", "e", "--kind", "count", "--window", "1 day"])).stderr).toContain(
      "--window must be a duration like 30m, 24h or 7d",
    );
    const oneArm = await cli.run([
      "experiments",
      "create",
      "solo",
      "--flag",
      "checkout-flow",
      "--env",
      "development",
      "--variant",
      "control",
      "--metric",
      "purchased",
    ]);
    expect(oneArm.code).toBe(2);
    expect(oneArm.stderr).toContain("at least two --variant options");
    const unknownMetric = await cli.run([
      "experiments",
      "create",
      "x",
      "--flag",
      "checkout-flow",
      "--env",
      "development",
      "--variant",
      "control",
      "--variant",
      "treatment",
      "--metric",
      "nope",
    ]);
    expect(unknownMetric.code).toBe(1);
    expect(unknownMetric.stderr).toMatch(/nope/);
    expect(
      await json([
        "experiments",
        "create",
        "one-page",
        "--flag",
        "checkout-flow",
        "--env",
        "development",
        "--variant",
        "control=50",
        "--variant",
        "treatment=50",
        "--metric",
        "purchased",
        "--name",
        "One page",
        "--hypothesis",
        "one page converts better",
      ]),
    ).toMatchObject({
      key: "one-page",
      name: "One page",
      flag: "checkout-flow",
      status: "draft",
      control: "control",
      variants: [
        { variant: "control", weight: 50 },
        { variant: "treatment", weight: 50 },
      ],
      primaryMetrics: ["purchased"],
    });
    expect(await json(["metrics"])).toEqual([
      { key: "purchased", name: "Purchased", event: "purchase", kind: "conversion", direction: "increase" },
      { ...revPerSession, name: "rev-per-session", direction: "increase" },
    ]);
    expect(await json(["experiments", "list"])).toMatchObject([{ key: "one-page", flag: "checkout-flow", status: "draft" }]);
    expect(await json(["experiments", "start", "one-page"])).toMatchObject({ status: "running" });
    const results = await json<{ experiment: string; metrics: { metric: string; variants: { variant: string; units: number }[] }[] }>([
      "experiments",
      "results",
      "one-page",
    ]);
    expect(results.experiment).toBe("one-page");
    expect(results.metrics.map((m) => m.metric)).toEqual(["purchased"]);
    const table = await cli.run(["experiments", "results", "one-page", "--confidence", "0.9"]);
    expect(table.code, table.stderr).toBe(0);
    expect(table.stdout).toMatch(/^METRIC +VARIANT +UNITS +MEAN +LIFT +90% INTERVAL/m);
    expect(table.stdout).toMatch(/^purchased +control \(control\)/m);
    expect((await cli.run(["experiments", "results", "one-page", "--confidence", "2"])).code).toBe(2);
    expect(await json(["experiments", "stop", "one-page", "--ship", "treatment"])).toMatchObject({ status: "stopped", shippedVariant: "treatment" });
  }, 60_000);

  it("creates experiments with analysis settings (on the flag and metric above)", async () => {
    const arms = ["--flag", "checkout-flow", "--env", "development", "--variant", "control", "--variant", "treatment", "--metric", "purchased"];
    expect(
      await json(["experiments", "create", "tuned", ...arms, "--engine", "bayesian", "--scale", "absolute", "--correction", "holm", "--level", "0.9"]),
    ).toMatchObject({
      key: "tuned",
      settings: { engine: "bayesian", scale: "absolute", correction: "holm", confidenceLevel: 0.9, sides: "two_sided", sequential: false },
    });
    expect(await json(["experiments", "create", "peeked", ...arms, "--one-sided", "--sequential", "--planned-units", "5000"])).toMatchObject({
      settings: { engine: "frequentist", sides: "one_sided", sequential: true, plannedUnitsPerArm: 5000 },
    });
    // Results use the experiment's own level and scale unless --confidence says otherwise.
    expect(await json(["experiments", "results", "tuned"])).toMatchObject({ confidenceLevel: 0.9, scale: "absolute" });
    const tunedTable = await cli.run(["experiments", "results", "tuned"]);
    expect(tunedTable.stdout).toMatch(/^METRIC +VARIANT +UNITS +MEAN +LIFT +90% INTERVAL/m);
    expect(await json(["experiments", "results", "tuned", "--confidence", "0.8"])).toMatchObject({ confidenceLevel: 0.8 });
    const badLevel = await cli.run(["experiments", "create", "bad-level", ...arms, "--level", "0.3"]);
    expect(badLevel.code).toBe(1);
    expect(badLevel.stderr).toContain("confidence_level");
    const badEngine = await cli.run(["experiments", "create", "bad-engine", ...arms, "--engine", "magic"]);
    expect(badEngine.code).toBe(2);
    expect(badEngine.stderr).toContain("Allowed choices are frequentist, bayesian");
  });
});

describe("flags as code", () => {
  it("pull → diff (0) → edit → diff (3) → apply → diff (0) → audit entry; apply twice changes nothing", async () => {
    const file = join(dir, "flags.yaml");
    const pulled = await cli.run(["pull", "-f", file]);
    expect(pulled.code, pulled.stderr).toBe(0);
    const clean = await cli.run(["diff", "-f", file]);
    expect(clean.code, clean.stderr).toBe(0);
    expect(clean.stdout).toContain("No changes");

    const text = await readFile(file, "utf8");
    await writeFile(
      file,
      text.replace(
        /^flags:\n/m,
        [
          "flags:",
          "  banner:",
          "    type: string",
          "    variants: {blue: blue, red: red}",
          "    environments:",
          "      staging:",
          "        enabled: true",
          "        default: blue",
          "        rules:",
          "          - when: [{attribute: email, op: ends_with, values: ['@example.com']}]",
          "            variant: red",
          "",
        ].join("\n"),
      ),
    );
    const pending = await cli.run(["diff", "-f", file]);
    expect(pending.code, pending.stderr).toBe(3);
    expect(pending.stdout).toContain("+ create flag banner");
    expect(pending.stdout).toContain("~ update targeting of flag banner in staging");
    expect(pending.stdout).toContain("    +default: blue");
    const asJson = JSON.parse((await cli.run(["diff", "-f", file, "-o", "json"])).stdout) as {
      changes: { action: string; kind: string; key: string; environment: string | null }[];
    };
    expect(asJson.changes.map((c) => [c.action, c.kind, c.key, c.environment])).toEqual([
      ["create", "flag", "banner", null],
      ["update", "targeting", "banner", "staging"],
    ]);

    const applied = await cli.run(["apply", "-f", file, "--reason", "from git"]);
    expect(applied.code, applied.stderr).toBe(0);
    expect(applied.stdout).toContain("Applied 2 changes.");
    expect((await cli.run(["diff", "-f", file])).code).toBe(0);
    expect(await json(["apply", "-f", file])).toEqual({ applied: [], pending: [], dryRun: false });

    const entries = await json<{ action: string; reason: string; environment: string | null }[]>(["audit", "--flag", "banner"]);
    expect(entries.map((e) => [e.action, e.environment, e.reason])).toEqual([
      ["flag.environment.update", "staging", "from git"],
      ["flag.create", null, "from git"],
    ]);
    expect(await json(["eval", "banner", "--env", "staging", "-c", "email=ann@example.com"])).toMatchObject({ value: "red", reason: "targeting_match" });
  });

  it("--dry-run and --prune: shows archiving flags the files omit, and archives only when asked", async () => {
    await json(["flags", "create", "dry-flag"]);
    const file = join(dir, "only-banner.yaml");
    await writeFile(file, "flags:\n  banner:\n    type: string\n    variants: {blue: blue, red: red}\n");
    const dry = await json<{ pending: { action: string; key: string }[] }>(["apply", "-f", file, "--prune", "--dry-run"]);
    expect(dry.pending.filter((c) => c.action === "archive").map((c) => c.key)).toContain("dry-flag");
    expect((await json<{ key: string }[]>(["flags", "list"])).map((f) => f.key)).toContain("dry-flag");
  });

  it("--prune archives what the files omit, and listing it again unarchives it (in another project, by --project)", async () => {
    const { call, accessToken } = await adminSession(started, "development");
    const { project } = await call<{ project: { id: string } }>(
      "vane.identity.v1.IdentityService/CreateProject",
      { organizationId: started.organizationId, key: "pruned", name: "Pruned" },
      accessToken,
    );
    await call("vane.identity.v1.IdentityService/CreateEnvironment", { projectId: project.id, key: "dev", name: "Dev" }, accessToken);
    const inProject = (args: string[]) => json([...args, "--project", "pruned"]);
    await inProject(["flags", "create", "kept"]);
    await inProject(["flags", "create", "dropped"]);
    const file = join(dir, "pruned.yaml");
    await writeFile(file, "project: pruned\nflags:\n  kept: {type: boolean, variants: {on: true, off: false}}\n");
    expect((await cli.run(["diff", "-f", file])).code).toBe(0); // without --prune, extra flags are not a difference
    expect((await cli.run(["diff", "-f", file, "--prune"])).code).toBe(3);
    const applied = await json<{ applied: { action: string; key: string }[] }>(["apply", "-f", file, "--prune"]);
    expect(applied.applied.map((c) => [c.action, c.key])).toEqual([["archive", "dropped"]]);
    expect((await inProject(["flags", "list", "--archived"])).map((f: { key: string }) => f.key)).toEqual(["dropped"]);
    expect((await cli.run(["diff", "-f", file, "--prune"])).code).toBe(0);

    await writeFile(
      file,
      "project: pruned\nflags:\n  kept: {type: boolean, variants: {on: true, off: false}}\n  dropped: {name: dropped, type: boolean, variants: {on: true, off: false}}\n",
    );
    const back = await json<{ applied: { action: string; key: string }[] }>(["apply", "-f", file, "--prune"]);
    expect(back.applied.map((c) => [c.action, c.key])).toEqual([["unarchive", "dropped"]]);
    const wrong = await cli.run(["diff", "-f", file, "--project", "default"]);
    expect(wrong.code).toBe(2);
    expect(wrong.stderr.trim()).toBe("error: --project default but the files say project: pruned");
  });

  it("names the file, line and field of an unknown variant or environment, checked against the server", async () => {
    const file = join(dir, "wrong.yaml");
    await writeFile(
      file,
      "flags:\n  banner:\n    type: string\n    variants: {blue: blue, red: red}\n    environments:\n      staging:\n        enabled: true\n        default: green\n      qa:\n        enabled: false\n",
    );
    const res = await cli.run(["apply", "-f", file]);
    expect(res.code).toBe(1);
    expect(res.stderr).toContain(`${file}:8: flags.banner.environments.staging.default: unknown variant "green" (flag banner has blue, red)`);
    expect(res.stderr).toContain(`${file}:9: flags.banner.environments.qa: unknown environment "qa" (the project has development, production, staging)`);

    // A rule that does not compile is the server's to judge; the message still names the place.
    await writeFile(
      file,
      "flags:\n  banner:\n    type: string\n    variants: {blue: blue, red: red}\n    environments:\n      staging:\n        enabled: true\n        rules:\n          - when: [{attribute: email, op: matches, values: ['(unclosed']}]\n            variant: red\n",
    );
    const bad = await cli.run(["apply", "-f", file]);
    expect(bad.code).toBe(1);
    expect(bad.stderr.trim()).toMatch(
      new RegExp(
        `^error: ${file}:6: could not update targeting of flag banner in staging: invalid_argument: rules\\[0\\]\\.conditions\\[0\\].*not a valid regular expression.*; nothing was applied$`,
      ),
    );
  });

  it("a concurrent edit during apply fails cleanly, saying what was and was not applied", async () => {
    await json(["flags", "create", "race-flag", "--type", "string", "--variant", 'blue="blue"', "--variant", 'red="red"']);
    const file = join(dir, "race.yaml");
    await writeFile(
      file,
      [
        "segments:",
        "  race-staff: {name: Staff, when: [{attribute: email, op: ends_with, values: ['@example.com']}]}",
        "flags:",
        "  race-flag:",
        "    type: string",
        "    variants: {blue: blue, red: red}",
        "    environments:",
        "      staging: {enabled: true, default: red}",
        "",
      ].join("\n"),
    );
    const applying = cli.start(["apply", "-f", file, "--confirm"]);
    await applying.waitFor(/Apply 2 changes\? \[y\/N\]/);
    // Someone else changes race-flag's staging targeting after apply read it.
    await json(["flags", "set", "race-flag", "--env", "staging", "--off"]);
    applying.child.stdin!.end("y\n");
    const res = await applying.exited;
    expect(res.code).toBe(1);
    expect(res.stderr).toMatch(
      /error: .*race\.yaml:8: could not update targeting of flag race-flag in staging: changed on the server since vane read it \(.*\); 1 of 2 changes were applied before it \(create segment race-staff\), the rest were not; run vane diff/,
    );
    expect(res.stderr).not.toMatch(/\n\s+at /);
    // Nothing else moved: the other edit stands, and a new apply converges.
    expect((await json<{ environments: Record<string, { enabled: boolean }> }>(["flags", "get", "race-flag"])).environments.staging.enabled).toBe(false);
    expect((await cli.run(["apply", "-f", file])).code).toBe(0);
    expect((await cli.run(["diff", "-f", file])).code).toBe(0);
    expect(await json(["segments", "get", "race-staff"])).toMatchObject({ key: "race-staff", name: "Staff", when: [{ attribute: "email", op: "ends_with" }] });
    expect((await json<{ key: string }[]>(["segments", "list"])).map((x) => x.key)).toContain("race-staff");
  });
});
