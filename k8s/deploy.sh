#!/usr/bin/env bash
# Deploys (or upgrades, or rolls back) Vane to the current kubectl context:
#   k8s/deploy.sh dev|prod                     migrations first, then the services
#   k8s/deploy.sh dev|prod --skip-migrations   roll back to an older image (see docs/operations.md)
set -euo pipefail

env="${1:?usage: k8s/deploy.sh dev|prod [--skip-migrations]}"
skip_migrations="${2:-}"
here="$(cd "$(dirname "$0")" && pwd)"
ns=vane
kubectl="${KUBECTL:-kubectl}"

wait_for_jobs() {
  local deadline=$((SECONDS + 900)) job state
  for job in $("$kubectl" get jobs -n "$ns" -l app.kubernetes.io/component=migration -o name); do
    while :; do
      state="$("$kubectl" get -n "$ns" "$job" -o jsonpath='{.status.conditions[?(@.status=="True")].type}')"
      case "$state" in
        *Complete*) echo "$job: complete"; break ;;
        *Failed*) echo "$job: FAILED; logs:" >&2; "$kubectl" logs -n "$ns" "$job" --tail=50 >&2 || true; exit 1 ;;
      esac
      if ((SECONDS > deadline)); then echo "$job: timed out" >&2; exit 1; fi
      sleep 5
    done
  done
}

if [[ "$skip_migrations" != "--skip-migrations" ]]; then
  # A Job's pod template is immutable: remove the previous release's runs first.
  "$kubectl" delete jobs -n "$ns" -l app.kubernetes.io/component=migration --ignore-not-found --wait=true 2>/dev/null || true
  "$kubectl" apply -k "$here/overlays/$env/migrations"
  "$kubectl" wait -n "$ns" --for=condition=Ready cluster/vane-pg --timeout=15m
  wait_for_jobs
fi

"$kubectl" apply -k "$here/overlays/$env"
for d in identity flags evaluator collector analytics; do
  "$kubectl" rollout status -n "$ns" "deployment/$d" --timeout=10m
done
echo "vane ($env) is rolled out"
