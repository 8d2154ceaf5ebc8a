import { existsSync, mkdirSync, readdirSync, readFileSync } from 'node:fs';
import { dirname, extname, isAbsolute, join, resolve } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';
import { Worker } from 'node:worker_threads';
import Sqlite from 'better-sqlite3';
import pg from 'pg';
import { projectRoot } from '../paths.js';
import type { MigrateWorkerInput, MigrateWorkerMessage } from './migrate-worker.js';
import type { DatabaseProvider } from './schema-engine.js';

export type { DatabaseProvider } from './schema-engine.js';

/** Which database a DATABASE_URL names, by its scheme. */
export function providerOf(databaseUrl: string): DatabaseProvider {
  if (databaseUrl.startsWith('file:')) return 'sqlite';
  if (/^postgres(ql)?:\/\//.test(databaseUrl)) return 'postgres';
  throw new Error('DATABASE_URL must start with file: (SQLite) or postgresql:// (PostgreSQL)');
}

/**
 * The file a `file:` URL names, resolved against the working directory as
 * Prisma does for SQLite URLs (query parameters are ignored).
 */
export function sqliteFilePath(databaseUrl: string): string {
  const path = databaseUrl.slice('file:'.length).replace(/\?.*$/, '');
  return isAbsolute(path) ? path : resolve(process.cwd(), path);
}

/** The advisory-lock key of tessera's start-up work ("tess" in ASCII); Prisma's own migrate lock uses 72707369. */
const POSTGRES_LOCK_KEY = 0x74657373;
const LOCK_TIMEOUT_MS = 60_000;

/** In-process chains per database, so one process never competes with itself. */
const localLocks = new Map<string, Promise<unknown>>();

/**
 * Runs `fn` while holding tessera's start-up lock on the database: a
 * PostgreSQL session-level advisory lock, or on SQLite an exclusive
 * transaction on a lock file beside the database. Instances starting at the
 * same moment therefore apply migrations and create the first signing key one
 * after the other, never twice.
 */
export async function withMigrationLock<T>(databaseUrl: string, fn: () => Promise<T>): Promise<T> {
  const previous = localLocks.get(databaseUrl) ?? Promise.resolve();
  const run = previous.catch(() => {}).then(() => withProcessLock(databaseUrl, fn));
  const tail = run.catch(() => {});
  localLocks.set(databaseUrl, tail);
  try {
    return await run;
  } finally {
    if (localLocks.get(databaseUrl) === tail) localLocks.delete(databaseUrl);
  }
}

async function withProcessLock<T>(databaseUrl: string, fn: () => Promise<T>): Promise<T> {
  if (providerOf(databaseUrl) === 'postgres') {
    const client = new pg.Client({ connectionString: databaseUrl, connectionTimeoutMillis: 5000 });
    await client.connect();
    try {
      // Poll with pg_try_advisory_lock instead of blocking in pg_advisory_lock: a
      // blocked call is an open transaction, and the holder's migration may build an
      // index CONCURRENTLY, which waits for every open transaction: a deadlock that
      // PostgreSQL cannot see, because it runs through our process.
      const deadline = Date.now() + LOCK_TIMEOUT_MS;
      for (;;) {
        const { rows } = await client.query<{ locked: boolean }>('SELECT pg_try_advisory_lock($1) AS locked', [
          POSTGRES_LOCK_KEY,
        ]);
        if (rows[0]?.locked) break;
        if (Date.now() > deadline) throw new Error('timed out waiting for the start-up lock held by another instance');
        await sleep(100);
      }
      try {
        return await fn();
      } finally {
        await client.query('SELECT pg_advisory_unlock($1)', [POSTGRES_LOCK_KEY]).catch(() => {});
      }
    } finally {
      await client.end().catch(() => {});
    }
  }
  const file = sqliteFilePath(databaseUrl);
  mkdirSync(dirname(file), { recursive: true });
  const lock = new Sqlite(`${file}.migrate.lock`, { timeout: 0 });
  try {
    // Poll without blocking the event loop: a busy timeout would stall it.
    const deadline = Date.now() + LOCK_TIMEOUT_MS;
    for (;;) {
      try {
        lock.exec('BEGIN EXCLUSIVE');
        break;
      } catch (error) {
        if ((error as { code?: string }).code !== 'SQLITE_BUSY' || Date.now() > deadline) throw error;
        await sleep(25);
      }
    }
    try {
      return await fn();
    } finally {
      lock.exec('ROLLBACK');
    }
  } finally {
    lock.close();
  }
}

/** Options for {@link applyMigrations}. */
export interface ApplyMigrationsOptions {
  databaseUrl: string;
  /** Folder holding `sqlite/` and `postgres/` schema folders; defaults to the project's `prisma/`. */
  prismaRoot?: string;
  /** Receives the engine's progress messages (never SQL with data: migrations hold none). */
  log?: (message: string) => void;
}

/** The migrations folder, schema and lock file of one provider. */
export function migrationSource(provider: DatabaseProvider, prismaRoot = join(projectRoot, 'prisma')) {
  const dir = join(prismaRoot, provider);
  const migrationsDir = join(dir, 'migrations');
  const lockPath = join(migrationsDir, 'migration_lock.toml');
  if (!existsSync(lockPath)) throw new Error(`no migrations found in ${migrationsDir}`);
  const migrations = readdirSync(migrationsDir, { withFileTypes: true })
    .filter((entry) => entry.isDirectory() && existsSync(join(migrationsDir, entry.name, 'migration.sql')))
    .map((entry) => entry.name)
    .sort();
  return {
    schemaPath: join(dir, 'schema.prisma'),
    schema: readFileSync(join(dir, 'schema.prisma'), 'utf8'),
    migrationsDir,
    lockfile: { path: lockPath, content: readFileSync(lockPath, 'utf8') },
    migrations: migrations.map((name) => ({
      name,
      sql: readFileSync(join(migrationsDir, name, 'migration.sql'), 'utf8'),
    })),
  };
}

/**
 * Applies the pending migrations of `prisma/<provider>/migrations` with
 * Prisma's own schema engine (its wasm build), under the start-up lock. The
 * bookkeeping in `_prisma_migrations` is Prisma's, so `prisma migrate deploy`
 * and this function can be used on the same database interchangeably.
 */
export async function applyMigrations(options: ApplyMigrationsOptions): Promise<{ applied: string[] }> {
  const provider = providerOf(options.databaseUrl);
  const source = migrationSource(provider, options.prismaRoot);
  const connection =
    provider === 'sqlite' ? { sqliteFile: sqliteFilePath(options.databaseUrl) } : { postgresUrl: options.databaseUrl };
  if (connection.sqliteFile) mkdirSync(dirname(connection.sqliteFile), { recursive: true });
  return withMigrationLock(options.databaseUrl, async () => {
    // Checking first keeps start-up cheap and, on SQLite, lets an instance start
    // beside another process that has the file open: the engine takes an
    // exclusive lock on the database even when it has nothing to apply.
    const done = await finishedMigrations(options.databaseUrl);
    if (source.migrations.every((migration) => done.has(migration.name))) return { applied: [] };
    const applied = await migrateInWorker(
      {
        provider,
        connection,
        schema: { path: source.schemaPath, content: source.schema },
        migrationsList: {
          baseDir: source.migrationsDir,
          lockfile: source.lockfile,
          migrationDirectories: source.migrations.map((migration) => ({
            path: migration.name,
            migrationFile: { path: 'migration.sql', content: { tag: 'ok', value: migration.sql } },
          })),
          shadowDbInitScript: '',
        },
      },
      (line) => {
        const message = engineMessage(line);
        if (message) options.log?.(message);
      },
    );
    return { applied };
  });
}

/**
 * Runs the schema engine in a worker thread (src/db/migrate-worker.ts) and
 * resolves with the names of the migrations it applied. Once the worker exits,
 * the engine's wasm is gone from memory: a server that migrated at start-up
 * does not carry it for the rest of its life.
 */
function migrateInWorker(input: MigrateWorkerInput, log: (line: string) => void): Promise<string[]> {
  // The same extension as this module: .js when built, .ts under tsx (tests, scripts).
  const extension = extname(fileURLToPath(import.meta.url));
  const url = new URL(`./migrate-worker${extension}`, import.meta.url);
  // Under tsx (tests, scripts) the worker needs the TypeScript loader, which
  // Node 20 does not carry into worker threads: register it there first.
  const worker =
    extension === '.ts'
      ? new Worker(
          `import(${JSON.stringify(import.meta.resolve('tsx/esm/api'))})` +
            `.then((tsx) => tsx.register()).then(() => import(${JSON.stringify(url.href)}))`,
          { eval: true, workerData: input },
        )
      : new Worker(url, { workerData: input });
  return new Promise((resolvePromise, reject) => {
    let settled = false;
    worker.on('message', (message: MigrateWorkerMessage) => {
      if (message.kind === 'log') log(message.line);
      else if (message.kind === 'done') {
        settled = true;
        resolvePromise(message.applied);
      } else {
        settled = true;
        const error = Object.assign(
          new Error(message.message),
          message.code === undefined ? {} : { code: message.code },
        );
        if (message.stack) error.stack = message.stack;
        reject(error);
      }
    });
    worker.on('error', (error) => {
      settled = true;
      reject(error);
    });
    worker.on('exit', (code) => {
      if (!settled) reject(new Error(`the migration worker exited (code ${code}) before it finished`));
    });
  });
}

/** Names of the migrations recorded as finished in Prisma's `_prisma_migrations` table. */
async function finishedMigrations(databaseUrl: string): Promise<Set<string>> {
  const query =
    'SELECT migration_name FROM _prisma_migrations WHERE finished_at IS NOT NULL AND rolled_back_at IS NULL';
  if (providerOf(databaseUrl) === 'sqlite') {
    const file = sqliteFilePath(databaseUrl);
    if (!existsSync(file)) return new Set();
    const db = new Sqlite(file, { readonly: true, timeout: 5000 });
    try {
      const exists = db
        .prepare("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = '_prisma_migrations'")
        .get();
      if (!exists) return new Set();
      const rows = db.prepare(query).all() as { migration_name: string }[];
      return new Set(rows.map((row) => row.migration_name));
    } finally {
      db.close();
    }
  }
  const client = new pg.Client({ connectionString: databaseUrl, connectionTimeoutMillis: 5000 });
  await client.connect();
  try {
    const { rows } = await client.query<{ name: string | null }>(
      "SELECT to_regclass('_prisma_migrations')::text AS name",
    );
    if (!rows[0]?.name) return new Set();
    const result = await client.query<{ migration_name: string }>(query);
    return new Set(result.rows.map((row) => row.migration_name));
  } finally {
    await client.end().catch(() => {});
  }
}

/** The human message of one of the engine's JSON log lines. */
function engineMessage(line: string): string | null {
  try {
    const parsed = JSON.parse(line) as { fields?: { message?: unknown } };
    return typeof parsed.fields?.message === 'string' ? parsed.fields.message : null;
  } catch {
    return null;
  }
}
