/** login, logout, whoami, context use. */
import type { Command } from "commander";
import { ApiKeyKind, Role } from "#gen/vane/identity/v1/identity_pb.js";
import type { Principal } from "#gen/vane/identity/v1/identity_pb.js";
import { activeProfile, readConfig, writeConfig, type Profile } from "../config.ts";
import { UsageError, UserError } from "../errors.ts";
import { emit, parseFormat, printFields } from "../output.ts";
import { exchange, openSession, signIn, type GlobalOptions } from "../session.ts";
import { enumName } from "../shapes.ts";

async function readStdinLine(): Promise<string> {
  if (process.stdin.isTTY) process.stderr.write("API key: ");
  const { createInterface } = await import("node:readline");
  const rl = createInterface({ input: process.stdin, terminal: false });
  for await (const line of rl) {
    rl.close();
    return line.trim();
  }
  return "";
}

export async function login(cmd: Command): Promise<void> {
  const opts = cmd.optsWithGlobals<GlobalOptions & { url: string; apiKey?: string; name: string; oidc?: boolean }>();
  let url: URL;
  try {
    url = new URL(opts.url);
  } catch {
    throw new UsageError(`--url: not a URL: "${opts.url}"`);
  }
  const server = url.href.replace(/\/$/, "");
  let profile: Profile;
  let principal: Principal;
  if (opts.oidc) {
    if (opts.apiKey) throw new UsageError("--oidc and --api-key: pick one");
    const { oidcLogin } = await import("../oidc.ts");
    profile = { url: server, oidc: await oidcLogin(server, (text) => process.stderr.write(text)) };
    ({ principal } = await signIn(profile, undefined));
  } else {
    const apiKey = opts.apiKey ?? (await readStdinLine());
    if (!apiKey) throw new UsageError("no API key: pass --api-key KEY or pipe it on stdin (or sign in with --oidc)");
    ({ principal } = await exchange(url.href, apiKey));
    profile = { url: server, apiKey };
  }
  const config = await readConfig();
  config.profiles[opts.name] = profile;
  config.current = opts.name;
  const path = await writeConfig(config);
  process.stderr.write(`Logged in to ${url.host} as ${principal.subject} (${enumName(Role, principal.role)}); profile "${opts.name}" saved in ${path}\n`);
}

export async function logout(cmd: Command): Promise<void> {
  const opts = cmd.optsWithGlobals<GlobalOptions>();
  const config = await readConfig();
  const name = opts.profile ?? config.current ?? "default";
  if (!config.profiles[name]) throw new UserError(`no stored profile "${name}"`);
  delete config.profiles[name];
  if (config.current === name) config.current = Object.keys(config.profiles)[0];
  await writeConfig(config);
  process.stderr.write(`Logged out of profile "${name}"\n`);
}

export async function whoami(cmd: Command): Promise<void> {
  const opts = cmd.optsWithGlobals<GlobalOptions>();
  const format = parseFormat(opts.output);
  const session = await openSession(opts);
  const p = session.principal;
  const project = await session.project().catch(() => undefined);
  const wantedEnv = session.profile.environment ?? process.env.VANE_ENV;
  const env = wantedEnv || p.environmentId ? await session.environment().catch(() => undefined) : undefined;
  const data = {
    url: session.profile.url,
    subject: p.subject,
    role: enumName(Role, p.role),
    keyKind: enumName(ApiKeyKind, p.keyKind),
    organizationId: p.organizationId,
    project: project?.key ?? null,
    environment: env?.key ?? null,
  };
  await emit(format, data, () =>
    printFields([
      ["server", data.url],
      ["subject", data.subject],
      ["role", data.role],
      ["key kind", data.keyKind],
      ["organization", data.organizationId],
      ["project", data.project ?? undefined],
      ["environment", data.environment ?? undefined],
    ]),
  );
}

export async function contextUse(cmd: Command): Promise<void> {
  const opts = cmd.optsWithGlobals<GlobalOptions>();
  const parts = cmd.args[0].split("/");
  if (parts.length !== 3) throw new UsageError(`context must be ORG/PROJECT/ENV (parts may be empty), got "${cmd.args[0]}"`);
  const { name, fromEnv } = await activeProfile(opts.profile);
  if (fromEnv || !name) throw new UserError("VANE_API_KEY is set: the context comes from VANE_PROJECT and VANE_ENV, nothing is stored");
  const [organization, project, environment] = parts.map((p) => p || undefined);
  // Check the names before storing them, so a typo never becomes every command's failure.
  const session = await openSession({ ...opts, organization: organization ?? "", project });
  if (project) await session.project();
  if (environment) await session.environment(environment);
  const config = await readConfig();
  config.profiles[name] = { ...config.profiles[name], organization, project, environment };
  await writeConfig(config);
  process.stderr.write(`Context of profile "${name}": ${cmd.args[0]}\n`);
}
