# syntax=docker/dockerfile:1
# Multi-stage build: compile in one stage, run with production dependencies only.

FROM node:20-bookworm-slim AS build
WORKDIR /app
# better-sqlite3 compiles its native addon with node-gyp.
RUN apt-get update \
 && apt-get install -y --no-install-recommends python3 make g++ \
 && rm -rf /var/lib/apt/lists/*
COPY . .
# `npm ci` runs the project's `prepare` script: generates the Prisma clients and compiles to dist/.
RUN npm ci --no-audit --no-fund \
 && npm prune --omit=dev --no-audit --no-fund

FROM node:20-bookworm-slim
# MALLOC_ARENA_MAX: each argon2id hash allocates ~19 MiB on one of libuv's pool
# threads, and glibc keeps freed blocks in one arena per thread; two arenas keep
# resident memory ~100 MiB lower under a login flood (README, "Deploying").
ENV NODE_ENV=production \
    MALLOC_ARENA_MAX=2 \
    HOST=0.0.0.0 \
    PORT=3000 \
    DATA_DIR=/var/lib/tessera \
    DATABASE_URL=file:/var/lib/tessera/tessera.db
WORKDIR /app
COPY --from=build /app/package.json ./
COPY --from=build /app/node_modules ./node_modules
COPY --from=build /app/dist ./dist
COPY --from=build /app/bin ./bin
# Migrations are applied at start-up, so they ship with the image.
COPY --from=build /app/prisma ./prisma
# The common-password blocklist read at registration and password change.
COPY --from=build /app/assets ./assets
RUN mkdir -p /var/lib/tessera && chown node:node /var/lib/tessera
USER node
VOLUME ["/var/lib/tessera"]
EXPOSE 3000
HEALTHCHECK --interval=15s --timeout=3s --start-period=20s --retries=3 \
  CMD node -e "fetch('http://127.0.0.1:' + (process.env.PORT || 3000) + '/healthz').then((r) => process.exit(r.ok ? 0 : 1), () => process.exit(1))"
CMD ["node", "bin/tessera.js", "serve"]
