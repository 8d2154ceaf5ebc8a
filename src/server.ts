import { setFlagsFromString } from 'node:v8';
import type { FastifyInstance } from 'fastify';
import { buildApp } from './app.js';
import type { Config } from './config.js';
import { startTracing } from './telemetry/sdk.js';
import { lowerBackgroundThreadPriority } from './thread-priority.js';

/**
 * Starts the HTTP server and installs graceful shutdown: on SIGTERM or SIGINT
 * it stops accepting connections, lets in-flight requests finish (at most
 * SHUTDOWN_TIMEOUT seconds), closes the database and exits.
 */
export async function serve(config: Config): Promise<FastifyInstance> {
  // Under a burst (a login flood answered mostly with 503s) requests in flight
  // survive young-generation collections, and V8 lets the old generation grow
  // to up to 4x its live size before collecting it: ~100 MiB of garbage held
  // as RSS. A fixed, smaller growth factor keeps RSS near the live heap. V8
  // reads the flag each time it sets the next collection's limit.
  if (config.heapGrowingPercent > 0) setFlagsFromString(`--heap-growing-percent=${config.heapGrowingPercent}`);
  // Before the app exists: the signing threads it starts keep the event loop's priority.
  const priority =
    config.hashThreadNice > 0 || config.hashThreadIdle
      ? await lowerBackgroundThreadPriority({ increment: config.hashThreadNice, idle: config.hashThreadIdle })
      : null;
  // OpenTelemetry, when the standard OTEL_* variables ask for it; before the app exists.
  const stopTracing = await startTracing();
  const app = buildApp(config);
  if (priority?.refused)
    app.log.warn({ hashThreadNice: config.hashThreadNice }, `HASH_THREAD_NICE not applied: ${priority.refused}`);
  else if (priority?.skipped) app.log.debug(`HASH_THREAD_NICE not applied: ${priority.skipped}`);
  else if (priority)
    app.log.debug(
      { threads: priority.lowered, nice: priority.nice, serialScavenge: priority.serialScavenge },
      'background threads lowered',
    );
  if (priority?.idleRefused) app.log.warn(`HASH_THREAD_IDLE not applied: ${priority.idleRefused}`);
  else if (priority?.idle) app.log.debug({ threads: priority.idle }, 'background threads under SCHED_IDLE');
  let closing = false;
  const shutdown = (signal: NodeJS.Signals) => {
    if (closing) return;
    closing = true;
    app.log.info({ signal }, 'shutting down');
    const timer = setTimeout(() => {
      app.log.error('shutdown timed out; exiting with requests still in flight');
      process.exit(1);
    }, config.shutdownTimeout * 1000);
    timer.unref();
    app
      .close()
      .then(() => stopTracing?.())
      .then(
        () => process.exit(0),
        (error: unknown) => {
          app.log.error({ err: error }, 'error during shutdown');
          process.exit(1);
        },
      );
  };
  process.once('SIGTERM', shutdown);
  process.once('SIGINT', shutdown);
  await app.listen({ host: config.host, port: config.port });
  return app;
}
