import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { PrismaBetterSqlite3 } from '@prisma/adapter-better-sqlite3';
import { PrismaPg } from '@prisma/adapter-pg';
import {
  bindMigrationAwareSqlAdapterFactory,
  type SqlDriverAdapter,
  type SqlMigrationAwareDriverAdapterFactory,
} from '@prisma/driver-adapter-utils';
import pg from 'pg';

/** The database kinds tessera runs on. */
export type DatabaseProvider = 'sqlite' | 'postgres';

/** The part of Prisma's wasm schema engine tessera uses (types from @prisma/schema-engine-wasm). */
export interface SchemaEngine {
  applyMigrations(input: unknown): Promise<{ appliedMigrationNames: string[] }>;
  diff(input: unknown): Promise<{ exitCode: number; stdout: string }>;
  free(): void;
}

/** The slice of the WebAssembly global this module uses (not in the ES2023 lib). */
interface WasmRuntime {
  instantiate(
    bytes: Uint8Array,
    imports: Record<string, unknown>,
  ): Promise<{ instance: { exports: Record<string, unknown> } }>;
}
const { WebAssembly } = globalThis as unknown as { WebAssembly: WasmRuntime };

interface SchemaEngineGlue {
  __wbg_set_wasm(exports: Record<string, unknown>): void;
  SchemaEngine: { new: (options: unknown, log: (message: string) => void, adapter: object) => Promise<SchemaEngine> };
}

let gluePromise: Promise<SchemaEngineGlue> | null = null;

/**
 * Instantiates Prisma's schema engine compiled to wasm (the same engine
 * `prisma migrate deploy` downloads natively, which cannot be fetched offline).
 * The package's own entry imports the .wasm file as an ES module, which Node
 * does not do by default, so the module is instantiated here with the
 * wasm-bindgen glue as its import object.
 */
function loadGlue(): Promise<SchemaEngineGlue> {
  gluePromise ??= (async () => {
    const require = createRequire(import.meta.url);
    const gluePath = require.resolve('@prisma/schema-engine-wasm/schema_engine_bg');
    const glue = (await import(gluePath)) as SchemaEngineGlue;
    const bytes = readFileSync(gluePath.replace(/\.js$/, '.wasm'));
    // The engine reports Rust panics through this registry.
    const registry = globalThis as { PRISMA_WASM_PANIC_REGISTRY?: { set_message(message: string): void } };
    registry.PRISMA_WASM_PANIC_REGISTRY ??= { set_message: () => {} };
    // The engine arms timers (connection timeouts) it never clears; unref them so
    // a finished migration does not hold the process open for their duration.
    const imports: Record<string, unknown> = { ...glue };
    for (const [name, fn] of Object.entries(imports)) {
      if (name.startsWith('__wbg_setTimeout_') && typeof fn === 'function') {
        imports[name] = (...args: unknown[]) => {
          const timer = fn(...args) as { unref?: () => void };
          timer.unref?.();
          return timer;
        };
      }
    }
    const { instance } = await WebAssembly.instantiate(bytes, { './schema_engine_bg.js': imports });
    glue.__wbg_set_wasm(instance.exports);
    (instance.exports.__wbindgen_start as () => void)();
    return glue;
  })();
  return gluePromise;
}

/** An engine bound to one database, and how to release it. */
export interface OpenSchemaEngine {
  engine: SchemaEngine;
  close(): Promise<void>;
}

/**
 * Opens the wasm schema engine on a database through a Prisma driver adapter.
 * `close()` frees the engine and every connection it opened.
 */
export async function openSchemaEngine(
  provider: DatabaseProvider,
  connection: { sqliteFile?: string; postgresUrl?: string },
  schema: { path: string; content: string },
  log: (message: string) => void = () => {},
): Promise<OpenSchemaEngine> {
  const glue = await loadGlue();
  let pool: pg.Pool | null = null;
  let inner: SqlMigrationAwareDriverAdapterFactory;
  if (provider === 'sqlite') {
    inner = new PrismaBetterSqlite3({ url: connection.sqliteFile ?? ':memory:', timeout: 5000 });
  } else {
    pool = new pg.Pool({ connectionString: connection.postgresUrl, max: 2, connectionTimeoutMillis: 5000 });
    inner = new PrismaPg(pool);
  }
  // Track the adapters the engine opens so they can be disposed of: a pool left
  // open keeps a one-shot command alive.
  const opened: SqlDriverAdapter[] = [];
  const tracked: SqlMigrationAwareDriverAdapterFactory = {
    provider: inner.provider,
    adapterName: inner.adapterName,
    connect: async () => {
      const adapter = await inner.connect();
      opened.push(adapter);
      return adapter;
    },
    connectToShadowDb: async () => {
      const adapter = await inner.connectToShadowDb();
      opened.push(adapter);
      return adapter;
    },
  };
  const engine = await glue.SchemaEngine.new(
    { datamodels: [[schema.path, schema.content]] },
    log,
    bindMigrationAwareSqlAdapterFactory(tracked),
  );
  return {
    engine,
    close: async () => {
      engine.free();
      for (const adapter of opened) await adapter.dispose().catch(() => {});
      await pool?.end();
    },
  };
}

/** Schema filters: tessera's schema owns every table in its database. */
export const NO_EXTERNAL_OBJECTS = { externalTables: [], externalEnums: [] };
