import { describe, expect, it } from "vitest";
import { ConfigError, createEnvReader } from "#lib/process/config.ts";
import { readCommonConfig } from "#lib/process/service-config.ts";

describe("config", () => {
  it("reads defaults and typed values", () => {
    const env = createEnvReader({ VANE_PORT: "9000", VANE_CORS_ORIGINS: "https://a.test, https://b.test", DATABASE_URL: "postgres://x@h/db" });
    const cfg = readCommonConfig(env);
    env.done();
    expect(cfg).toMatchObject({ port: 9000, corsOrigins: ["https://a.test", "https://b.test"], databaseUrl: "postgres://x@h/db", logLevel: "info" });
    expect(cfg.shutdownTimeoutMs).toBe(20_000);
  });

  it("reports every bad variable by name with what it expects", () => {
    const env = createEnvReader({
      VANE_PORT: "eighty",
      VANE_LOG_LEVEL: "loud",
      VANE_DATABASE_URL: "mysql://nope",
      VANE_DRAIN_DELAY: "5 minutes",
      VANE_MIGRATE_ON_START: "maybe",
    });
    readCommonConfig(env);
    let err: unknown;
    try {
      env.done();
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(ConfigError);
    const problems = (err as ConfigError).problems.join("\n");
    for (const name of ["VANE_PORT", "VANE_LOG_LEVEL", "VANE_DATABASE_URL", "VANE_DRAIN_DELAY", "VANE_MIGRATE_ON_START"]) {
      expect(problems).toContain(name);
    }
    expect(problems).toMatch(/VANE_PORT must be an integer from 0 to 65535/);
  });

  it("takes only origins a browser would send", () => {
    const good = createEnvReader({ VANE_CORS_ORIGINS: "https://a.test, http://localhost:5173, *" });
    expect(good.origins("VANE_CORS_ORIGINS", ["*"])).toEqual(["https://a.test", "http://localhost:5173", "*"]);
    good.done();
    const bad = createEnvReader({ VANE_CORS_ORIGINS: "https://a.test/, a.test, https://b.test/app" });
    bad.origins("VANE_CORS_ORIGINS", ["*"]);
    expect(() => bad.done()).toThrow(
      /VANE_CORS_ORIGINS must list origins like https:\/\/app.example.com \(no path, no trailing slash\) or \*, got "https:\/\/a.test\/"/,
    );
    try {
      bad.done();
    } catch (e) {
      expect((e as ConfigError).problems).toHaveLength(3);
    }
  });

  it("never shows a password in a bad URL's message", () => {
    const env = createEnvReader({ VANE_DATABASE_URL: "postgress://vane:s3cretpw@db:5432/vane", VANE_NATS_URL: "http://user:natspw@nats:4222" });
    readCommonConfig(env);
    const problems = (() => {
      try {
        env.done();
        return "";
      } catch (e) {
        return (e as ConfigError).problems.join("\n");
      }
    })();
    expect(problems).toContain('VANE_DATABASE_URL must be a URL with scheme postgres or postgresql, got "postgress://vane:***@db:5432/vane"');
    expect(problems).toContain("VANE_NATS_URL");
    expect(problems).not.toMatch(/s3cretpw|natspw/);
  });

  it("requires what has no default", () => {
    const env = createEnvReader({});
    env.string("VANE_SOMETHING");
    expect(() => env.done()).toThrow(/VANE_SOMETHING is required/);
  });
});
