# syntax=docker/dockerfile:1
#
# tokensmith container image: `docker build -t tokensmith .` (README, Deployment).
#
# The base image is pinned by tag. To pin it by digest as well, resolve the digest once
# (`docker buildx imagetools inspect node:20-bookworm-slim`) and build with
#   docker build --build-arg NODE_IMAGE=node:20-bookworm-slim@sha256:<digest> -t tokensmith .
# node:22-bookworm-slim and node:24-bookworm-slim work unchanged (package.json asks for Node >= 20).
ARG NODE_IMAGE=node:20-bookworm-slim

# Build: every dependency, then the compiler. --ignore-scripts: the `prepare` script would build
# before the sources are here; the build runs on its own below.
FROM ${NODE_IMAGE} AS build
WORKDIR /app
COPY package.json package-lock.json ./
RUN npm ci --ignore-scripts --no-audit --no-fund
COPY tsconfig.json tsconfig.build.json ./
COPY src ./src
RUN npm run build

# Production dependencies only (no compiler, no test tools). --ignore-scripts again: `prepare`
# would call the compiler, which is a dev dependency.
FROM ${NODE_IMAGE} AS prod-deps
WORKDIR /app
COPY package.json package-lock.json ./
RUN npm ci --omit=dev --ignore-scripts --no-audit --no-fund && npm cache clean --force

# Runtime: root owns every file under /app and the server's user cannot write there, so the image
# runs with a read-only root filesystem (Kubernetes readOnlyRootFilesystem, docker run --read-only).
# The server writes nothing at run time when KEYS_DIR already holds keys; every file it reads lives
# under /var/run/tokensmith, where the keys, clients and trust Secrets are mounted.
FROM ${NODE_IMAGE} AS runtime
WORKDIR /app
COPY --from=prod-deps /app/node_modules ./node_modules
COPY --from=build /app/dist ./dist
COPY package.json package-lock.json ./
# Listen on every interface (the container's network namespace is its own; TLS ends at the ingress,
# so set ISSUER to its https URL). One process per container: scale with replicas, not WORKERS.
ENV HOST=0.0.0.0 \
    PORT=3000 \
    WORKERS=1 \
    KEYS_DIR=/var/run/tokensmith/keys \
    CLIENTS_FILE=/var/run/tokensmith/clients/clients.json \
    TRUST_FILE=/var/run/tokensmith/trust/trust.json
# The image's `node` user, by number, so Kubernetes runAsNonRoot can verify it is not root.
USER 1000:1000
EXPOSE 3000
# No curl or wget in the image: Node's own fetch asks /healthz (plain HTTP; with TLS_CERT_FILE set,
# use the orchestrator's probe instead).
HEALTHCHECK --interval=30s --timeout=5s --start-period=10s --retries=3 \
    CMD ["node", "-e", "fetch('http://127.0.0.1:'+(process.env.PORT||3000)+'/healthz').then(r=>process.exit(r.ok?0:1),()=>process.exit(1))"]
# node is PID 1 and handles SIGTERM and SIGINT itself (src/serve.ts: /readyz turns 503, in-flight
# requests finish, exit 0 within 10 s). Not `npm start`: its prestart would try to rebuild.
CMD ["node", "dist/main.js"]
