import { parentPort, workerData } from 'node:worker_threads';
import { type DatabaseProvider, NO_EXTERNAL_OBJECTS, openSchemaEngine } from './schema-engine.js';

/** What {@link ../migrate.ts} hands this worker. */
export interface MigrateWorkerInput {
  provider: DatabaseProvider;
  connection: { sqliteFile?: string; postgresUrl?: string };
  schema: { path: string; content: string };
  migrationsList: unknown;
}

/** Messages this worker posts: engine log lines, then one result. */
export type MigrateWorkerMessage =
  | { kind: 'log'; line: string }
  | { kind: 'done'; applied: string[] }
  | { kind: 'failed'; message: string; stack?: string; code?: unknown };

/**
 * Applies migrations with Prisma's wasm schema engine in a worker thread. The
 * engine's compiled module and linear memory (tens of MiB) belong to the worker's
 * isolate, so they are released when it exits instead of staying in the server
 * for its whole life (wasm-bindgen glue keeps its instance in module scope).
 */
const input = workerData as MigrateWorkerInput;
const post = (message: MigrateWorkerMessage) => parentPort?.postMessage(message);
try {
  const { engine, close } = await openSchemaEngine(input.provider, input.connection, input.schema, (line) =>
    post({ kind: 'log', line }),
  );
  try {
    const { appliedMigrationNames } = await engine.applyMigrations({
      migrationsList: input.migrationsList,
      filters: NO_EXTERNAL_OBJECTS,
    });
    post({ kind: 'done', applied: appliedMigrationNames });
  } finally {
    await close();
  }
} catch (error) {
  const { message, stack, code } = error as { message?: string; stack?: string; code?: unknown };
  post({ kind: 'failed', message: message ?? String(error), stack, code });
}
