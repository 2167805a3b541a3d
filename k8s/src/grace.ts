/**
 * Does each Vane Deployment's grace period cover its whole stop? Kubernetes kills a pod
 * terminationGracePeriodSeconds after it starts stopping it, counting the preStop hook. A Vane
 * process then waits VANE_DRAIN_DELAY and drains each of its servers (one per container port)
 * for up to VANE_SHUTDOWN_TIMEOUT; the rule assumes the servers drain one after another, the
 * worst case, and keeps a margin for closing NATS, Postgres and telemetry.
 */
import type { IContainer, IPodSpec } from "kubernetes-models/v1";
import { createEnvReader } from "#lib/process/config.ts";
import { readCommonConfig } from "#lib/process/service-config.ts";
import { ref, type K8sObject, type Violation } from "./render.ts";

/** Seconds kept for closing connections after the servers stopped. */
export const GRACE_MARGIN_SECONDS = 5;

/** The environment a container starts with: ConfigMaps of envFrom, then env values. */
function containerEnv(c: IContainer, objects: K8sObject[]): Record<string, string> {
  const env: Record<string, string> = {};
  for (const from of c.envFrom ?? []) {
    const name = from.configMapRef?.name;
    const cm = objects.find((o) => o.kind === "ConfigMap" && o.metadata.name === name) as { data?: Record<string, string> } | undefined;
    Object.assign(env, cm?.data ?? {});
  }
  for (const e of c.env ?? []) if (e.value !== undefined) env[e.name] = e.value;
  return env;
}

/** What one Deployment's stop takes at most, in seconds, with its parts. */
export function stopBudget(pod: IPodSpec, objects: K8sObject[]): { seconds: number; detail: string } {
  const c = pod.containers[0];
  const { drainDelayMs, shutdownTimeoutMs } = readCommonConfig(createEnvReader(containerEnv(c, objects)));
  const preStop = c.lifecycle?.preStop?.sleep?.seconds ?? 0;
  const servers = Math.max(1, c.ports?.length ?? 0);
  const seconds = preStop + drainDelayMs / 1000 + (shutdownTimeoutMs / 1000) * servers + GRACE_MARGIN_SECONDS;
  return {
    seconds,
    detail: `preStop ${preStop} s + VANE_DRAIN_DELAY ${drainDelayMs / 1000} s + VANE_SHUTDOWN_TIMEOUT ${shutdownTimeoutMs / 1000} s × ${servers} server(s) + ${GRACE_MARGIN_SECONDS} s`,
  };
}

/** Deployments whose grace period is shorter than their stop. */
export function checkGracePeriods(objects: K8sObject[]): Violation[] {
  const out: Violation[] = [];
  for (const obj of objects) {
    if (obj.kind !== "Deployment") continue;
    const pod = (obj.spec as { template?: { spec?: IPodSpec } }).template?.spec;
    if (!pod?.containers.length) continue;
    const grace = pod.terminationGracePeriodSeconds ?? 30;
    const budget = stopBudget(pod, objects);
    if (grace < budget.seconds) {
      out.push({ object: ref(obj), rule: "graceful-shutdown", detail: `terminationGracePeriodSeconds ${grace} < ${budget.seconds} (${budget.detail})` });
    }
  }
  return out;
}
