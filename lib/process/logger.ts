/**
 * Structured logging: one pino root per process, named children per subsystem, and the
 * active OpenTelemetry trace and span ids on every line so logs join traces.
 */
import { trace } from "@opentelemetry/api";
import { pino, type Logger } from "pino";

export type { Logger };

/** Options for the process's root logger. */
export interface LoggerOptions {
  level?: string;
  /** Extra fields on every line, e.g. the service name. */
  base?: Record<string, unknown>;
}

/** Creates the root logger. Create it once in `main` and pass children down. */
export function createLogger(opts: LoggerOptions = {}): Logger {
  return pino({
    level: opts.level ?? "info",
    base: opts.base ?? {},
    timestamp: pino.stdTimeFunctions.isoTime,
    formatters: { level: (label) => ({ level: label }) },
    mixin() {
      const ctx = trace.getActiveSpan()?.spanContext();
      return ctx ? { trace_id: ctx.traceId, span_id: ctx.spanId } : {};
    },
    redact: { paths: ["*.authorization", "*.apiKey", "*.secret", "*.password"], censor: "[redacted]" },
  });
}

/** A logger that discards everything; for tests that do not assert on logs. */
export function createSilentLogger(): Logger {
  return pino({ level: "silent" });
}
