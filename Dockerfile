# syntax=docker/dockerfile:1
# One image for every Vane service and its migrations:
#   docker build -t vane:dev .
#   docker run vane:dev services/flags/main.ts        (any service's entry point)
#   docker run vane:dev scripts/migrate.ts flags       (a schema migration)
# TypeScript runs through tsx (a production dependency), so there is no compile step; the
# type check happens in CI. Kubernetes mounts an emptyDir at /tmp for tsx's cache, and
# runs the root filesystem read-only.

ARG NODE_IMAGE=node:20.20.2-bookworm-slim

# ---- deps: production dependencies only, from the lockfile ----
FROM ${NODE_IMAGE} AS deps
WORKDIR /app
COPY package.json package-lock.json ./
# No install scripts: none of the runtime dependencies needs one (esbuild, under tsx,
# finds its platform binary through its optional dependency).
RUN npm ci --omit=dev --ignore-scripts --no-audit --no-fund \
 && npm cache clean --force

# ---- runtime: the app, owned by root, run as uid 10001 ----
FROM ${NODE_IMAGE} AS runtime
ENV NODE_ENV=production \
    VANE_PORT=8080 \
    NODE_OPTIONS=--enable-source-maps
WORKDIR /app
COPY --from=deps /app/node_modules ./node_modules
COPY package.json package-lock.json tsconfig.json ./
COPY gen ./gen
COPY lib ./lib
COPY engine ./engine
COPY services ./services
COPY scripts ./scripts
# Files stay root-owned and read-only to the service user.
USER 10001:10001
EXPOSE 8080 8013 8015
STOPSIGNAL SIGTERM
ENTRYPOINT ["node", "--import", "tsx"]
CMD ["services/evaluator/main.ts"]
