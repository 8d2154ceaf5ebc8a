import type { FastifyInstance } from 'fastify';
import { buildApp } from './app.js';
import type { Config } from './config.js';
import { startTracing } from './telemetry/sdk.js';

/**
 * Starts the HTTP server and installs graceful shutdown: on SIGTERM or SIGINT
 * it stops accepting connections, lets in-flight requests finish (at most
 * SHUTDOWN_TIMEOUT seconds), closes the database and exits.
 */
export async function serve(config: Config): Promise<FastifyInstance> {
  // OpenTelemetry, when the standard OTEL_* variables ask for it; before the app exists.
  const stopTracing = await startTracing();
  const app = buildApp(config);
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
