/**
 * Configuration from the environment, read once and validated at start-up. Every problem is
 * collected and reported together, naming the variable and what it expects.
 */

/** Thrown when the environment holds bad configuration; `problems` lists each one. */
export class ConfigError extends Error {
  constructor(readonly problems: string[]) {
    super(`invalid configuration:\n  - ${problems.join("\n  - ")}`);
    this.name = "ConfigError";
  }
}

type Env = Readonly<Record<string, string | undefined>>;

/** Typed readers over an environment; call `done()` to throw a ConfigError if any failed. */
export interface EnvReader {
  string(name: string, fallback?: string): string;
  optional(name: string): string | undefined;
  int(name: string, fallback: number, range?: { min?: number; max?: number }): number;
  bool(name: string, fallback: boolean): boolean;
  url(name: string, fallback: string | undefined, protocols: string[]): string | undefined;
  oneOf<T extends string>(name: string, fallback: T, allowed: readonly T[]): T;
  list(name: string, fallback?: string[]): string[];
  /** Browser origins (`https://app.example.com`, no path or trailing slash) or "*". */
  origins(name: string, fallback: string[]): string[];
  /** A duration such as `500ms`, `30s`, `5m`, `12h`, `30d`; returned in milliseconds. */
  durationMs(name: string, fallback: string): number;
  done(): void;
}

/** Creates a reader over `env` (tests pass a plain object; only `main.ts` passes process.env). */
export function createEnvReader(env: Env): EnvReader {
  const problems: string[] = [];
  const raw = (name: string) => {
    const v = env[name];
    return v === undefined || v.trim() === "" ? undefined : v.trim();
  };
  const units: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 };
  const parseDuration = (v: string) => {
    const m = /^(\d+(?:\.\d+)?)(ms|s|m|h|d)$/.exec(v);
    return m ? Number(m[1]) * units[m[2]] : undefined;
  };
  return {
    string(name, fallback) {
      const v = raw(name) ?? fallback;
      if (v === undefined) {
        problems.push(`${name} is required`);
        return "";
      }
      return v;
    },
    optional: (name) => raw(name),
    int(name, fallback, range = {}) {
      const v = raw(name);
      if (v === undefined) return fallback;
      const n = Number(v);
      const { min = Number.MIN_SAFE_INTEGER, max = Number.MAX_SAFE_INTEGER } = range;
      if (!/^-?\d+$/.test(v) || n < min || n > max) {
        problems.push(`${name} must be an integer from ${min} to ${max}, got "${v}"`);
        return fallback;
      }
      return n;
    },
    bool(name, fallback) {
      const v = raw(name)?.toLowerCase();
      if (v === undefined) return fallback;
      if (["1", "true", "yes", "on"].includes(v)) return true;
      if (["0", "false", "no", "off"].includes(v)) return false;
      problems.push(`${name} must be true or false, got "${v}"`);
      return fallback;
    },
    url(name, fallback, protocols) {
      const v = raw(name) ?? fallback;
      if (v === undefined) return undefined;
      try {
        const u = new URL(v);
        if (!protocols.includes(u.protocol.replace(/:$/, ""))) throw new Error();
        return v;
      } catch {
        problems.push(`${name} must be a URL with scheme ${protocols.join(" or ")}, got "${redactUrl(v)}"`);
        return fallback;
      }
    },
    oneOf(name, fallback, allowed) {
      const v = raw(name);
      if (v === undefined) return fallback;
      if (!(allowed as readonly string[]).includes(v)) {
        problems.push(`${name} must be one of ${allowed.join(", ")}, got "${v}"`);
        return fallback;
      }
      return v as typeof fallback;
    },
    list(name, fallback = []) {
      const v = raw(name);
      return v === undefined
        ? fallback
        : v
            .split(",")
            .map((s) => s.trim())
            .filter(Boolean);
    },
    origins(name, fallback) {
      const list = this.list(name, fallback);
      for (const o of list) {
        if (o === "*") continue;
        let origin: string | undefined;
        try {
          origin = new URL(o).origin;
        } catch {
          origin = undefined;
        }
        // A browser's Origin header is exactly scheme://host[:port]; anything else never matches.
        if (origin !== o) problems.push(`${name} must list origins like https://app.example.com (no path, no trailing slash) or *, got "${o}"`);
      }
      return list;
    },
    durationMs(name, fallback) {
      const v = raw(name) ?? fallback;
      const ms = parseDuration(v);
      if (ms === undefined) {
        problems.push(`${name} must be a duration like 500ms, 30s, 5m, 12h or 30d, got "${v}"`);
        return parseDuration(fallback) ?? 0;
      }
      return ms;
    },
    done() {
      if (problems.length) throw new ConfigError(problems);
    },
  };
}

/**
 * A URL as a message may show it: connection URLs carry passwords (built from Secrets in
 * Kubernetes), and start-up output lands in logs. The password (or the token a NATS URL may
 * carry in place of a user name) becomes "***"; text that does not even parse as scheme://…
 * and holds an "@" is not shown at all.
 */
export function redactUrl(value: string): string {
  const m = /^([^:/?#]*:\/\/)(?:([^/?#]*)@)?(.*)$/s.exec(value);
  if (!m) return value.includes("@") ? "<not shown: it may hold credentials>" : value;
  const [, scheme, userinfo, rest] = m;
  if (userinfo === undefined) return value;
  const colon = userinfo.indexOf(":");
  if (colon >= 0) return `${scheme}${userinfo.slice(0, colon)}:***@${rest}`;
  // A lone user name is no secret, except in NATS URLs, where it is the token.
  return /^(nats|tls|ws|wss):\/\//i.test(scheme) ? `${scheme}***@${rest}` : value;
}
