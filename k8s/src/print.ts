/**
 * `npm run k8s:render -- <overlay>`: prints an overlay exactly as `kubectl apply -k` would
 * apply it (default: overlays/prod), for review or `kubectl diff -f -`.
 */
import { kustomize } from "./render.ts";

process.stdout.write(kustomize(process.argv[2] ?? "overlays/prod"));
