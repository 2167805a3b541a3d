/**
 * Profiles: `$XDG_CONFIG_HOME/vane/config` (else ~/.config/vane/config), JSON, mode 0600 since
 * it holds API keys. `VANE_URL` + `VANE_API_KEY` replace the profile entirely (CI), and then
 * nothing is read or stored.
 */
import { chmod, mkdir, readFile, rename, writeFile } from "node:fs/promises";
import { homedir } from "node:os";
import { dirname, join } from "node:path";
import { UserError } from "./errors.ts";

/** A sign-in through the server's OpenID Connect provider (`vane login --oidc`). */
export interface OidcSession {
  issuer: string;
  clientId: string;
  idToken: string;
  /** Epoch ms. */
  idTokenExpiresAt: number;
  refreshToken?: string;
}

export interface Profile {
  url: string;
  /** The credential: an API key, or an OpenID Connect session. */
  apiKey?: string;
  oidc?: OidcSession;
  /** `context use`: organization slug or id, project key or id, environment key or id. */
  organization?: string;
  project?: string;
  environment?: string;
}

export interface ConfigFile {
  current?: string;
  profiles: Record<string, Profile>;
}

export function configPath(): string {
  const base = process.env.XDG_CONFIG_HOME || join(homedir(), ".config");
  return join(base, "vane", "config");
}

export async function readConfig(): Promise<ConfigFile> {
  const path = configPath();
  let text: string;
  try {
    text = await readFile(path, "utf8");
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === "ENOENT") return { profiles: {} };
    throw err;
  }
  try {
    const parsed = JSON.parse(text) as ConfigFile;
    return { current: parsed.current, profiles: parsed.profiles ?? {} };
  } catch (err) {
    throw new UserError(`${path}: not valid JSON (${(err as Error).message}); fix or delete it and run vane login`);
  }
}

/** Writes through a temporary file created 0600, so the keys are never readable by others. */
export async function writeConfig(config: ConfigFile): Promise<string> {
  const path = configPath();
  await mkdir(dirname(path), { recursive: true, mode: 0o700 });
  const tmp = `${path}.${process.pid}.tmp`;
  await writeFile(tmp, `${JSON.stringify(config, null, 2)}\n`, { mode: 0o600 });
  await chmod(tmp, 0o600);
  await rename(tmp, path);
  return path;
}

/** The profile in force: the environment's (CI) or the named/current stored one. */
export async function activeProfile(name?: string): Promise<{ profile: Profile; name?: string; fromEnv: boolean }> {
  const url = process.env.VANE_URL;
  const apiKey = process.env.VANE_API_KEY;
  if (apiKey) {
    if (!url) throw new UserError("VANE_API_KEY is set but VANE_URL is not: set both (e.g. VANE_URL=http://localhost:8080)");
    return {
      profile: { url, apiKey, organization: process.env.VANE_ORG, project: process.env.VANE_PROJECT, environment: process.env.VANE_ENV },
      fromEnv: true,
    };
  }
  const config = await readConfig();
  const chosen = name ?? process.env.VANE_PROFILE ?? config.current ?? "default";
  const profile = config.profiles[chosen];
  if (!profile) throw new UserError(`not logged in${name ? ` (no profile "${name}")` : ""}: run vane login, or set VANE_URL and VANE_API_KEY`);
  return { profile: { ...profile, url: url ?? profile.url }, name: chosen, fromEnv: false };
}
