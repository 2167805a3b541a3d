/**
 * A web page using the unmodified OFREP web provider against Vane's evaluator, bundled by
 * ofrep-web.test.ts and run in Chromium from another origin (real CORS preflights). Each function
 * returns plain JSON for the test.
 */
import { OFREPWebProvider } from "@openfeature/ofrep-web-provider";
import { type EvaluationDetails, type FlagValue, OpenFeature, ProviderEvents } from "@openfeature/web-sdk";

let configurationChanges = 0;

const pick = (d: EvaluationDetails<FlagValue>) => ({ value: d.value, variant: d.variant ?? null, reason: d.reason ?? null, errorCode: d.errorCode ?? null });

const api = {
  async start(domain: string, baseUrl: string, token: string, context: Record<string, string>, pollInterval: number) {
    const provider = new OFREPWebProvider({ baseUrl, headers: [["Authorization", `Bearer ${token}`]], pollInterval, cacheMode: "disabled" });
    OpenFeature.getClient(domain).addHandler(ProviderEvents.ConfigurationChanged, () => void configurationChanges++);
    await OpenFeature.setContext(domain, context);
    try {
      await OpenFeature.setProviderAndWait(domain, provider);
      return { ready: true, error: null };
    } catch (err) {
      return { ready: false, error: String(err) };
    }
  },

  details(domain: string, flag: string, fallback: FlagValue) {
    const c = OpenFeature.getClient(domain);
    switch (typeof fallback) {
      case "boolean":
        return pick(c.getBooleanDetails(flag, fallback));
      case "string":
        return pick(c.getStringDetails(flag, fallback));
      case "number":
        return pick(c.getNumberDetails(flag, fallback));
      default:
        return pick(c.getObjectDetails(flag, fallback));
    }
  },

  async setContext(domain: string, context: Record<string, string>) {
    await OpenFeature.setContext(domain, context);
    return { ok: true };
  },

  changes: () => configurationChanges,
};

export type OfrepWebApi = typeof api;
(globalThis as unknown as { vane: OfrepWebApi }).vane = api;
